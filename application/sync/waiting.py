"""Waiting that a stop interrupts: the worker's loops back off on the injected clock."""

from __future__ import annotations

import asyncio
import random

from application.ports import Clock


def backoff(failures: int, cap: float, retry_after: float | None = None, honour_up_to: float | None = None) -> float:
    """Seconds to wait after ``failures`` failures in a row: jittered, doubling from 1 s up to
    ``cap``; a ``Retry-After`` the other side gave is honoured up to ``honour_up_to`` (``cap``)."""
    ceiling = min(cap, 2.0 ** min(failures - 1, 30))
    return max(random.uniform(ceiling / 2, ceiling), min(retry_after or 0.0, cap if honour_up_to is None else honour_up_to))


async def sleep_unless_stopped(clock: Clock, seconds: float, stopping: asyncio.Event) -> bool:
    """Sleep ``seconds`` on ``clock``; False if ``stopping`` was set meanwhile (or before).
    A clock that fails to sleep raises here rather than letting its caller spin."""
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if sleeper.done():
        sleeper.result()
    else:
        sleeper.cancel()
    return not stopping.is_set()
