"""Client-side pacing of an external system's calls: one budget for the whole account, whatever calls it.

Stripe counts requests per account per second, across every process holding the key. So the
budget is a *ledger of time slots* shared by every worker (PostgreSQL: ``adapters.postgres.budget``;
in memory for a single process): the rate ``r`` gives one slot every ``1/r`` seconds, and a
process reserves the next ``n`` free slots in one step (GCRA, the "generic cell rate algorithm":
the ledger keeps only the time of the next free slot). Each call then waits for its own slot.
No two calls anywhere share a slot, so no one-second window holds more than ``r`` calls --
however many workers, and whether the call is a push, a re-fetch, a catch-up poll or a reconcile
page.

A process reserves as many slots as it has calls waiting (up to ``max_lease``): an idle process
takes one at a time, a busy one saves round trips to the ledger. A slot left unused (its call
failed before it was due, the process stopped) is simply lost: the budget errs on the side of
spending less.

On the injected clock (not the event loop's), so that pacing is testable against a fake clock.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import msgspec

from application.ports import Clock

# A reserved slot already this far in the past is dropped rather than spent late, so that a
# process that fell behind its slots cannot spend them all at once.
LATE = timedelta(milliseconds=50)


class Lease(msgspec.Struct, frozen=True):
    """``count`` slots, ``slot_step(rate)`` apart, the first at ``first``; ``now`` is the ledger's clock
    when it answered (a ledger in PostgreSQL keeps the database's time, not this host's)."""

    first: datetime
    count: int
    now: datetime


Ledger = Callable[[int], Awaitable[Lease]]  # reserve the next n slots


def slot_step(rate: float) -> timedelta:
    """The time between two slots: ``1/rate`` s, rounded *up* to the microsecond (the resolution
    of datetimes and of PostgreSQL's timestamps), so that rounding never fits an extra call in."""
    return timedelta(microseconds=math.ceil(1_000_000 / rate))


class InMemoryLedger:
    """The ledger of one process (``custsync dev``, a CLI on in-memory storage, tests)."""

    def __init__(self, rate: float, clock: Clock) -> None:
        self.rate, self._clock = rate, clock
        self._next_free: datetime | None = None

    async def __call__(self, count: int) -> Lease:
        now = self._clock.now()
        first = max(now, self._next_free or now)
        self._next_free = first + count * slot_step(self.rate)
        return Lease(first=first, count=count, now=now)


class RateBudget:
    """This process's side of the account-wide budget: ``await acquire()`` before each call."""

    def __init__(self, rate: float, clock: Clock, ledger: Ledger, max_lease: int = 10) -> None:
        if rate <= 0 or max_lease < 1:
            raise ValueError("rate and max_lease must be positive")
        self.rate, self._clock, self._ledger, self._max_lease = rate, clock, ledger, max_lease
        self._slots: deque[datetime] = deque()
        self._waiting = 0
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait for this call's slot; returns how long that took (seconds, on the clock)."""
        self._waiting += 1
        start = self._clock.now()
        try:
            async with self._lock:  # slots are handed out in order: one waiter at a time
                slot = await self._next_slot()
                delay = (slot - self._clock.now()).total_seconds()
                if delay > 0:
                    await self._clock.sleep(delay)
        finally:
            self._waiting -= 1
        return (self._clock.now() - start).total_seconds()

    async def _next_slot(self) -> datetime:
        late = self._clock.now() - LATE
        while self._slots and self._slots[0] < late:
            self._slots.popleft()
        if not self._slots:
            lease = await self._ledger(min(self._max_lease, max(1, self._waiting)))
            skew = self._clock.now() - lease.now  # the ledger's clock on this host's
            step = slot_step(self.rate)
            self._slots.extend(lease.first + skew + i * step for i in range(lease.count))
        return self._slots.popleft()
