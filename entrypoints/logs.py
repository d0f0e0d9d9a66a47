"""Logging for the processes: one line per record on stderr -- readable (the default, for a
terminal) or one JSON object (LOG_FORMAT=json, for a log pipeline) -- carrying the fields of the
work in hand (application.correlation: correlation id, event, customer, external id, topic,
partition, offset); and a chatty library's repeated complaints held back.

While a broker is down aiokafka logs the same error for every reconnect attempt (several a
second, per connection); an operator needs to see it once, and how long it lasted, not 20,000
lines. Our own wait messages are already one line per attempt with backoff.
"""

from __future__ import annotations

import logging
import sys
import time

from pythonjsonlogger.json import JsonFormatter

from application.correlation import log_fields

CHATTY = ("aiokafka",)  # loggers whose identical messages are held back
# Libraries that log every HTTP request at INFO (three lines per Stripe call between them): at
# WARNING unless LOG_LEVEL=DEBUG. Our own lines say what was synced; their failures still show.
PER_REQUEST = ("httpx", "httpcore", "stripe")
# Lines that say nothing to an operator at INFO: alembic announcing each of its plugins on import,
# and its context ("Context impl PostgresqlImpl.") at every schema check (`custsync migrate` lets
# its migration lines through again).
QUIET = ("alembic.runtime.plugins", "alembic.runtime.migration")
REPEAT_INTERVAL = 30.0
# A LogRecord's own attributes: not repeated as JSON keys (the message, level, logger and time are).
RESERVED = [*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime", "taskName"]


class HoldBackRepeats(logging.Filter):
    """The first record of a kind (logger + message template) goes through, then at most one per
    ``interval`` seconds, saying how many like it were held back meanwhile."""

    def __init__(self, prefixes: tuple[str, ...] = CHATTY, interval: float = REPEAT_INTERVAL) -> None:
        super().__init__()
        self._prefixes, self._interval = prefixes, interval
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # kind -> (last let through, held since)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefixes):
            return True
        kind = (record.name, str(record.msg))
        now = time.monotonic()
        last, held = self._seen.get(kind, (None, 0))
        if last is not None and now - last < self._interval:
            self._seen[kind] = (last, held + 1)
            return False
        self._seen[kind] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {now - last:.0f}s held back]"  # type: ignore[operator]
        return True


class WithContext(logging.Filter):
    """Puts the fields of the work in hand on each record (as attributes: JSON keys), and a short
    ``[...]`` of them for the readable format."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = log_fields()
        for key, value in fields.items():
            if not hasattr(record, key):  # what a line says itself (extra=) wins
                setattr(record, key, value)
        record.context = f" [{' '.join(f'{k}={v}' for k, v in fields.items())}]" if fields else ""
        return True


TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"
FORMATS = ("text", "json")


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED, "context"],
            timestamp="time",  # ISO 8601, UTC
        )
    return logging.Formatter(TEXT)


def configure(level: str, fmt: str = "text") -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(fmt))
        handler.addFilter(HoldBackRepeats())
        handler.addFilter(WithContext())
    if logging.getLevelName(level.upper()) != logging.DEBUG:
        for name in (*PER_REQUEST, *QUIET):
            logging.getLogger(name).setLevel(logging.WARNING)
