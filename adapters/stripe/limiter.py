"""Stripe's SDK services, paced by the account-wide request budget (``adapters.budget``), and
counted: calls by method and status class, their time, and the wait for a slot."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Protocol

import stripe

from adapters.budget import RateBudget

log = logging.getLogger(__name__)
# Set while a catch-up poll lists events: its calls log at DEBUG when they succeed, so an idle
# account adds no line per poll (the poll itself says what it found). Every other call logs at INFO.
_POLLING: ContextVar[bool] = ContextVar("custsync_stripe_polling", default=False)


@contextlib.contextmanager
def polling() -> Iterator[None]:
    token = _POLLING.set(True)
    try:
        yield
    finally:
        _POLLING.reset(token)


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
            if metrics is not None:
                metrics.rate_limit_waited("stripe", waited)
            start, status, request_id = time.perf_counter(), None, None
            try:
                result = await method(*args, **kwargs)
                status, request_id = 200, _request_id(result)
                return result
            except stripe.StripeError as exc:
                # No status: no answer (a timeout, a connection refused).
                status, request_id = exc.http_status, exc.request_id
                raise
            finally:
                seconds = time.perf_counter() - start
                if metrics is not None:
                    metrics.external_request("stripe", label, status, seconds)
                # The line that ties our correlation id (on the record) to Stripe's Request-Id.
                # A named service's first argument is the record's id (``customers.update("cus_1", ...)``);
                # the raw client's is the HTTP method.
                target = args[0] if self._name and args and isinstance(args[0], str) else None
                quiet = _POLLING.get() and status is not None and status < 400
                log.log(
                    logging.DEBUG if quiet else logging.INFO,
                    "stripe %s%s -> %s in %.0f ms (Request-Id %s)",
                    label,
                    f" {target}" if target else "",
                    status or "no answer",
                    seconds * 1000,
                    request_id or "-",
                    extra={"stripe_request_id": request_id, "external_id": target, "status": status},
                )

        return paced


def _request_id(result: Any) -> str | None:
    """Stripe's ``Request-Id`` of the answer (stripe-python keeps it on the object it returns)."""
    response = getattr(result, "last_response", None)
    return getattr(response, "request_id", None)
