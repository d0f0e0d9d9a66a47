"""The one way a customer change is stored: the row and its integration event, in one transaction."""

from __future__ import annotations

from application.ports import UnitOfWork
from domain.customer import Customer
from domain.errors import CustomerNotFound, StaleVersion
from domain.messages import ChangeKind, CustomerChanged, new_event_id


async def record_change(uow: UnitOfWork, customer: Customer, kind: ChangeKind, origin: str | None = None) -> None:
    """Save ``customer`` and add the event that carries the change to every other system.

    Callers commit ``uow``; whatever they commit, the change and its event go together.
    """
    await uow.customers.save(customer)
    await uow.outbox.add(
        CustomerChanged(
            event_id=new_event_id(),
            customer_id=customer.id,
            kind=kind,
            version=customer.version,
            data=None if customer.deleted else customer.data,
            occurred_at=customer.updated_at,
            origin=origin,
        )
    )


async def existing_customer(uow: UnitOfWork, customer_id: int, expected_version: int | None = None) -> Customer:
    customer = await uow.customers.get(customer_id)
    if customer is None or customer.deleted:
        raise CustomerNotFound(customer_id)
    if expected_version is not None and expected_version != customer.version:
        raise StaleVersion(customer_id, expected_version, customer.version)
    return customer
