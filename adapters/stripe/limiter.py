"""Stripe's SDK services, paced by the account-wide request budget (``adapters.budget``), and
counted: calls by method and status class, their time, and the wait for a slot."""

from __future__ import annotations

import time
from typing import Any, Protocol

import stripe

from adapters.budget import RateBudget


class CallMetrics(Protocol):
    def external_request(self, system: str, method: str, status: int | None, seconds: float) -> None: ...

    def rate_limit_waited(self, system: str, seconds: float) -> None: ...


class RateLimited:
    """An SDK service (customers, accounts, events...) whose every async call, retries included,
    takes a slot first: one budget for every request the worker sends. ``name`` labels its
    calls (``customers`` -> ``customers.update``)."""

    def __init__(self, service: Any, budget: RateBudget, metrics: CallMetrics | None = None, name: str = "") -> None:
        self._service = service
        self._budget = budget
        self._metrics, self._name = metrics, name

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._service, name)
        if not name.endswith("_async"):
            return method
        metrics, label = self._metrics, f"{self._name}.{name.removesuffix('_async')}".lstrip(".")

        async def paced(*args: Any, **kwargs: Any) -> Any:
            waited = await self._budget.acquire()
            if metrics is None:
                return await method(*args, **kwargs)
            metrics.rate_limit_waited("stripe", waited)
            start, status = time.perf_counter(), None
            try:
                result = await method(*args, **kwargs)
                status = 200
                return result
            except stripe.StripeError as exc:
                status = exc.http_status  # None: no answer (a timeout, a connection refused)
                raise
            finally:
                metrics.external_request("stripe", label, status, time.perf_counter() - start)

        return paced
