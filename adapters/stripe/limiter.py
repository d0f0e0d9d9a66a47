"""Stripe's SDK services, paced by the account-wide request budget (``adapters.budget``)."""

from __future__ import annotations

from typing import Any

from adapters.budget import RateBudget


class RateLimited:
    """An SDK service (customers, accounts, events...) whose every async call, retries included,
    takes a slot first: one budget for every request the worker sends."""

    def __init__(self, service: Any, budget: RateBudget) -> None:
        self._service = service
        self._budget = budget

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._service, name)
        if not name.endswith("_async"):
            return method

        async def paced(*args: Any, **kwargs: Any) -> Any:
            await self._budget.acquire()
            return await method(*args, **kwargs)

        return paced
