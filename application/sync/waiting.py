"""Waiting that a stop interrupts: the worker's loops back off on the injected clock."""

from __future__ import annotations

import asyncio

from application.ports import Clock


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
