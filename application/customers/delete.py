from __future__ import annotations

from application.commands import DeleteCustomer
from application.customers.changes import existing_customer, record_change, retried_on_concurrent_update
from application.ports import Clock, UnitOfWork
from domain.messages import ChangeKind


async def delete_customer(cmd: DeleteCustomer, uow: UnitOfWork, clock: Clock) -> None:
    """Delete a customer here and, through the outbox, in every integration."""

    async def attempt() -> None:
        async with uow:
            customer = await existing_customer(uow, cmd.customer_id, cmd.expected_versions)
            await record_change(uow, customer.tombstone(clock.now()), ChangeKind.DELETED)
            await uow.commit()

    await retried_on_concurrent_update(attempt)
