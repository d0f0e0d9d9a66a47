from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


class FakeClock:
    """A clock that moves only when told to; ``sleep`` advances it instantly and records the wait."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC), max_sleeps: int = 20_000) -> None:
        self._now = start
        self.slept: list[float] = []
        # Sleeping is instant here, so a wait that never ends (an outage a test forgot to end, a
        # request nothing answers) would spin for good: fail it loudly instead.
        self.max_sleeps = max_sleeps

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        if len(self.slept) >= self.max_sleeps:
            raise RuntimeError(f"FakeClock: slept {len(self.slept)} times; something waits for what never comes")
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
