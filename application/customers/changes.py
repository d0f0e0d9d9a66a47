"""The one way a customer change is stored: the row and its integration event, in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from application.correlation import current_correlation
from application.ports import UnitOfWork
from domain.customer import Customer
from domain.errors import ConcurrentUpdate, CustomerNotFound, StaleVersion
from domain.messages import ChangeKind, CustomerChanged, new_event_id


async def record_change(
    uow: UnitOfWork, customer: Customer, kind: ChangeKind, origin: str | None = None, *, forced_for: str | None = None
) -> str:
    """Save ``customer`` and add the event that carries the change to every other system (its id
    is returned). ``forced_for``: an operator's push or a reconcile's export, for that system only.

    Callers commit ``uow``; whatever they commit, the change and its event go together.
    """
    await uow.customers.save(customer)
    event_id = new_event_id()
    await uow.outbox.add(
        CustomerChanged(
            event_id=event_id,
            customer_id=customer.id,
            kind=kind,
            version=customer.version,
            data=None if customer.deleted else customer.data,
            occurred_at=customer.updated_at,
            origin=origin,
            forced=forced_for is not None,
            forced_for=forced_for,
            correlation_id=current_correlation(),
        )
    )
    return event_id


async def existing_customer(uow: UnitOfWork, customer_id: int, expected_versions: frozenset[int] | None = None) -> Customer:
    customer = await uow.customers.get(customer_id)
    if customer is None or customer.deleted:
        raise CustomerNotFound(customer_id)
    if expected_versions is not None and customer.version not in expected_versions:
        raise StaleVersion(customer_id, expected_versions, customer.version)
    return customer


T = TypeVar("T")
# The sync worker's stores: the external call before them is done and is not repeated, only where
# its answer goes is read afresh, so they may try harder than a client's request.
STORE_ATTEMPTS = 10


async def retried_on_concurrent_update(attempt: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
    """Run ``attempt`` again from a fresh read when someone (the sync worker, another request)
    saved the customer (or its mapping) in between. A client's own If-Match is checked on every read, so a stale
    client still gets its 412; only races it could not have known about are absorbed."""
    for remaining in range(attempts - 1, -1, -1):
        try:
            return await attempt()
        except ConcurrentUpdate:
            if not remaining:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
