from __future__ import annotations

from collections.abc import Callable

from application.commands import PatchCustomer, ReplaceCustomer
from application.customers.changes import existing_customer, record_change, retried_on_concurrent_update
from application.ports import Clock, UnitOfWork
from domain.customer import Customer, CustomerData, validated, validated_changes
from domain.messages import ChangeKind


async def replace_customer(cmd: ReplaceCustomer, uow: UnitOfWork, clock: Clock) -> Customer:
    """Replace every synced field (PUT)."""
    data = validated(cmd.name, cmd.email)
    return await _revise(uow, clock, cmd.customer_id, cmd.expected_versions, lambda _: data)


async def patch_customer(cmd: PatchCustomer, uow: UnitOfWork, clock: Clock) -> Customer:
    """Change only the given fields (PATCH)."""
    return await _revise(uow, clock, cmd.customer_id, cmd.expected_versions, lambda d: validated_changes(d, cmd.changes))


async def _revise(
    uow: UnitOfWork,
    clock: Clock,
    customer_id: int,
    expected_versions: frozenset[int] | None,
    change: Callable[[CustomerData], CustomerData],
) -> Customer:
    async def attempt() -> Customer:
        async with uow:
            customer = await existing_customer(uow, customer_id, expected_versions)
            revised = customer.revised(change(customer.data), clock.now())
            # A write that changes nothing emits nothing: no event, no external call, same version.
            if revised is not customer:
                await record_change(uow, revised, ChangeKind.UPDATED)
                await uow.commit()
        return revised

    return await retried_on_concurrent_update(attempt)
