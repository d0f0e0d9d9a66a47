"""A chatty library's repeated complaints are held back; ours and everyone else's are not."""

import logging

from entrypoints.logs import HoldBackRepeats


def record(name, msg, *args):
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_repeated_aiokafka_error_goes_through_once_per_interval_saying_how_many_were_held(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("entrypoints.logs.time.monotonic", lambda: now[0])
    hold = HoldBackRepeats(interval=30)
    assert hold.filter(record("aiokafka", "Unable connect to node with id %s: %s", 1, "refused"))
    passed = [hold.filter(record("aiokafka", "Unable connect to node with id %s: %s", 1, "refused")) for _ in range(500)]
    assert not any(passed)
    assert hold.filter(record("aiokafka.consumer", "another kind")), "another message is not held back"
    now[0] += 31
    again = record("aiokafka", "Unable connect to node with id %s: %s", 1, "refused")
    assert hold.filter(again)
    assert again.getMessage() == "Unable connect to node with id 1: refused [500 more like this in the last 31s held back]"


def test_our_own_lines_are_never_held_back():
    hold = HoldBackRepeats(interval=30)
    assert all(hold.filter(record("custsync", "waits %s", i)) for i in range(100))


def test_libraries_that_log_every_http_request_are_quiet_unless_debugging():
    import logging

    from entrypoints.logs import PER_REQUEST, configure

    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in PER_REQUEST}
    try:
        configure("INFO")
        assert all(not logging.getLogger(name).isEnabledFor(logging.INFO) for name in PER_REQUEST)
        assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    finally:
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)
