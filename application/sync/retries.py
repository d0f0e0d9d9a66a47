"""Retrying a sync store when someone wrote the same rows meanwhile."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from domain.errors import ConcurrentUpdate

T = TypeVar("T")
ATTEMPTS = 10


async def retried_on_concurrent_write(attempt: Callable[[], Awaitable[T]], attempts: int = ATTEMPTS) -> T:
    """Run ``attempt`` (one unit of work that reads what it needs afresh) again when a concurrent
    writer moved the customer or its mapping between its read and its write. The external call
    that came before stays done: its answer is a fact, only where to store it is re-read."""
    for remaining in range(attempts - 1, -1, -1):
        try:
            return await attempt()
        except ConcurrentUpdate:
            if not remaining:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
