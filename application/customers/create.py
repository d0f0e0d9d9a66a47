from __future__ import annotations

from application.commands import CreateCustomer
from application.customers.changes import record_change
from application.ports import Clock, UnitOfWork
from domain.customer import Customer, validated
from domain.messages import ChangeKind


async def create_customer(cmd: CreateCustomer, uow: UnitOfWork, clock: Clock) -> Customer:
    """Add a customer to the catalog; it reaches every integration through the outbox."""
    data = validated(cmd.name, cmd.email)
    async with uow:
        customer = await uow.customers.add(data, clock.now())
        await record_change(uow, customer, ChangeKind.CREATED)
        await uow.commit()
    return customer
