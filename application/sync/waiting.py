"""One way to wait: keep trying while a failure is passing, back off on the injected clock, stop
when asked. Every loop of the worker and every start-up wait goes through ``keep_trying``, with
the one backoff formula of ``Backoff``."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

from application.errors import BackendUnavailable, IntegrationError
from application.ports import Clock

T = TypeVar("T")


class Backoff(msgspec.Struct, frozen=True):
    """Seconds to wait after ``failures`` failures in a row: "full jitter" (a uniform draw up to a
    ceiling that doubles from ``base`` and stops at ``cap``), so that many waiters do not retry in
    step; never sooner than a ``Retry-After`` the other side asked for, honoured up to
    ``honour_up_to`` (default: the cap)."""

    base: float = 1.0
    cap: float = 30.0
    honour_up_to: float | None = None

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** min(failures - 1, 30))
        honoured = min(retry_after or 0.0, self.cap if self.honour_up_to is None else self.honour_up_to)
        return max(random.uniform(0.0, ceiling), honoured)


class Stopped(Exception):
    """Asked to stop while waiting: the work in hand is left for whoever comes next."""


def retry_after(error: BaseException) -> float | None:
    """How long the other side asked us to wait, when it said (``Retry-After``)."""
    value = getattr(error, "retry_after", None)
    return value if isinstance(value, int | float) else None


async def keep_trying(
    attempt: Callable[[], Awaitable[T]],
    *,
    clock: Clock,
    stopping: asyncio.Event,
    backoff: Backoff,
    passing: Callable[[Exception, int], bool] = lambda error, failures: True,
    pause: Callable[[Exception], float | None] = lambda error: None,
    waiting: Callable[[Exception, float, int], None] | None = None,
    recovered: Callable[[int], None] | None = None,
    still_wanted: Callable[[], bool] = lambda: True,
) -> T:
    """``attempt()`` until it succeeds, and its result.

    A failure that is ``passing`` (given the error and the failures so far, this one included) is
    waited out: ``pause(error)`` seconds when it names a wait of its own, else the ``backoff``'s
    (which honours the error's ``retry_after``), on ``clock``; any other failure is raised.
    ``waiting`` hears each wait (the error, the delay, the failures so far: one log line each),
    ``recovered`` the number of failures once an attempt succeeds after some. ``stopping`` set
    during a wait, or ``still_wanted()`` false after one, raises ``Stopped``."""
    failures = 0
    while True:
        try:
            result = await attempt()
        except Exception as error:
            failures += 1
            if not passing(error, failures):
                raise
            delay = pause(error)
            if delay is None:
                delay = backoff.delay(failures, retry_after(error))
            if waiting is not None:
                waiting(error, delay, failures)
            if not await sleep_unless_stopped(clock, delay, stopping) or not still_wanted():
                raise Stopped from error
            continue
        if failures and recovered is not None:
            recovered(failures)
        return result


def logged(log: logging.Logger, what: str) -> tuple[Callable[[Exception, float, int], None], Callable[[int], None]]:
    """``waiting`` and ``recovered`` for ``keep_trying`` that say it in ``log``: one line per wait
    (an outage at WARNING, anything else -- a bug -- with its traceback), one when it is over."""

    def waiting(error: Exception, delay: float, failures: int) -> None:
        if isinstance(error, BackendUnavailable | IntegrationError):
            log.warning("%s waits %.1fs (attempt %d): %s", what, delay, failures, error)
        else:
            log.error("%s failed (attempt %d); retrying in %.1fs", what, failures, delay, exc_info=error)

    def recovered(failures: int) -> None:
        log.info("%s resumed after %d failed attempt(s)", what, failures)

    return waiting, recovered


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
