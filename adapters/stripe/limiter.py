"""Client-side pacing of Stripe calls.

A token bucket on the injected clock (not the event loop's), so that pacing is testable against a
fake clock; libraries such as aiolimiter read the loop's time and cannot be driven that way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from application.ports import Clock


class TokenBucket:
    """At most ``rate`` acquisitions per second, bursts up to ``burst``.

    The default burst of 1 paces calls evenly (one every 1/rate s), so that no one-second window
    ever holds more than ``rate`` calls: Stripe counts per second, not on average.
    """

    def __init__(self, rate: float, clock: Clock, burst: float = 1.0) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock.now()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:  # one waiter at a time keeps the queue fair and the math simple
            self._refill()
            if self._tokens < 1:
                await self._clock.sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1

    def _refill(self) -> None:
        now = self._clock.now()
        elapsed = (now - self._updated).total_seconds()
        self._updated = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)


class RateLimited:
    """An SDK service (customers, accounts, events...) whose every async call, retries included,
    takes a token first: one budget for every request the worker sends."""

    def __init__(self, service: Any, bucket: TokenBucket) -> None:
        self._service = service
        self._bucket = bucket

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._service, name)
        if not name.endswith("_async"):
            return method

        async def paced(*args: Any, **kwargs: Any) -> Any:
            await self._bucket.acquire()
            return await method(*args, **kwargs)

        return paced
