"""Logging for the processes: one readable line per record on stderr, and a chatty library's
repeated complaints held back.

While a broker is down aiokafka logs the same error for every reconnect attempt (several a
second, per connection); an operator needs to see it once, and how long it lasted, not 20,000
lines. Our own wait messages are already one line per attempt with backoff.
"""

from __future__ import annotations

import logging
import sys
import time

CHATTY = ("aiokafka",)  # loggers whose identical messages are held back
# Libraries that log every HTTP request at INFO (three lines per Stripe call between them): at
# WARNING unless LOG_LEVEL=DEBUG. Our own lines say what was synced; their failures still show.
PER_REQUEST = ("httpx", "httpcore", "stripe")
REPEAT_INTERVAL = 30.0


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


def configure(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(HoldBackRepeats())
    if logging.getLevelName(level.upper()) != logging.DEBUG:
        for name in PER_REQUEST:
            logging.getLogger(name).setLevel(logging.WARNING)
