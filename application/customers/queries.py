"""Read-side use cases: a customer with its links, a page of customers, a sync history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from application.commands import ListCustomers
from application.customers.changes import existing_customer
from application.ports import UnitOfWork
from domain.customer import Customer
from domain.errors import CustomerNotFound
from domain.mapping import ExternalMapping
from domain.sync import FAILING, Direction, SyncRecord

MAX_PAGE_SIZE = 100


class Link(msgspec.Struct, frozen=True, kw_only=True):
    """Where a customer stands in one external system."""

    system: str
    external_id: str | None
    sync_status: str  # "synced", "pending", "failed" (being retried), "dead" (see the DLQ) or "broken"
    last_synced_at: datetime | None
    broken: str | None = None  # why the link cannot be used (e.g. the external id is unknown to the account)


class CustomerView(msgspec.Struct, frozen=True):
    customer: Customer
    links: list[Link]


class CustomerPage(msgspec.Struct, frozen=True):
    customers: list[Customer]
    next_after_id: int | None


async def get_customer(customer_id: int, uow: UnitOfWork, systems: Sequence[str]) -> CustomerView:
    """The customer and one link per configured system (pending until its first sync)."""
    async with uow:
        customer = await existing_customer(uow, customer_id)
        mappings = {m.system: m for m in await uow.mappings.for_customer(customer_id)}
        # The history only tells a link that is neither synced nor broken whether it is failing:
        # a customer in sync everywhere (the usual case) costs no history read.
        names = list(systems) + sorted(set(mappings) - set(systems))
        settled = all(m is not None and (m.broken is not None or m.in_sync_with(customer)) for m in map(mappings.get, names))
        history = [] if settled and names else await uow.sync_records.for_customer(customer_id, limit=50)
    return CustomerView(customer, [_link(customer, system, mappings.get(system), history) for system in names])


def _link(customer: Customer, system: str, mapping: ExternalMapping | None, history: list[SyncRecord]) -> Link:
    if mapping is not None and mapping.broken is not None:
        status = "broken"
    elif mapping is not None and mapping.in_sync_with(customer):
        status = "synced"
    else:
        latest = next((r for r in history if r.system == system and r.direction is Direction.OUTBOUND), None)
        status = latest.status.value if latest is not None and latest.status in FAILING else "pending"
    return Link(
        system=system,
        external_id=mapping.external_id if mapping else None,
        sync_status=status,
        last_synced_at=mapping.synced_at if mapping else None,
        broken=mapping.broken if mapping else None,
    )


async def list_customers(query: ListCustomers, uow: UnitOfWork) -> CustomerPage:
    """Customers in id order, ``limit`` at a time; ``next_after_id`` continues the listing."""
    limit = max(1, min(query.limit, MAX_PAGE_SIZE))
    async with uow:
        rows = await uow.customers.page(after_id=query.after_id, limit=limit + 1, email=query.email)
    more = len(rows) > limit
    rows = rows[:limit]
    return CustomerPage(rows, rows[-1].id if more else None)


async def sync_history(customer_id: int, uow: UnitOfWork, limit: int = 100) -> list[SyncRecord]:
    """Every sync record of a customer, newest first (also for a deleted customer)."""
    async with uow:
        customer = await uow.customers.get(customer_id)
        if customer is None:
            raise CustomerNotFound(customer_id)
        return await uow.sync_records.for_customer(customer_id, limit=max(1, min(limit, 500)))
