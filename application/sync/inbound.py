"""Inbound sync: apply one external change to the catalog, exactly once per event id."""

from __future__ import annotations

from datetime import datetime

from application.customers.changes import record_change
from application.ports import Clock, UnitOfWork, UnitOfWorkFactory
from domain.conflicts import ConflictPolicy
from domain.customer import Customer
from domain.mapping import ExternalMapping
from domain.messages import ChangeKind, ExternalChange
from domain.reconcile import merge_inbound
from domain.sync import Direction, Operation, SyncRecord

_OPERATIONS = {ChangeKind.CREATED: Operation.CREATE, ChangeKind.UPDATED: Operation.UPDATE, ChangeKind.DELETED: Operation.DELETE}


async def sync_inbound(change: ExternalChange, uow_factory: UnitOfWorkFactory, clock: Clock, policy: ConflictPolicy) -> None:
    """The catalog write, the inbox entry and the sync record commit together, so a redelivered
    event is a no-op. A change applied here is re-broadcast with ``origin`` set: it reaches
    every *other* integration but is never pushed back to where it came from."""
    async with uow_factory() as uow:
        if await uow.inbox.seen(change.system, change.event_id):
            return
        now = clock.now()
        customer_id, note = await _apply(uow, change, now, policy)
        record = SyncRecord.pending(change.event_id, customer_id, Direction.INBOUND, change.system, _OPERATIONS[change.kind], now)
        await uow.sync_records.save(record.succeeded(now, note))
        await uow.inbox.add(change.system, change.event_id, now)
        await uow.commit()


async def _apply(uow: UnitOfWork, change: ExternalChange, now: datetime, policy: ConflictPolicy) -> tuple[int | None, str | None]:
    mapping = await uow.mappings.by_external_id(change.system, change.external_id)
    if mapping is None:
        mapping = await _link_own_create(uow, change, now)
    if mapping is None:
        if change.kind is ChangeKind.DELETED or change.customer.deleted:
            return None, "unknown customer: nothing to delete"
        return await _create(uow, change, now)
    customer = await uow.customers.get(mapping.customer_id)
    if customer is None or customer.deleted:
        return mapping.customer_id, "customer is deleted here: ignored"
    if change.kind is ChangeKind.DELETED or change.customer.deleted:
        tombstone = customer.tombstone(now)
        await record_change(uow, tombstone, ChangeKind.DELETED, origin=change.system)
        await uow.mappings.save(mapping.synced_to(tombstone, mapping.synced, now))
        return customer.id, None
    return customer.id, await _update(uow, customer, mapping, change, now, policy)


async def _link_own_create(uow: UnitOfWork, change: ExternalChange, now: datetime) -> ExternalMapping | None:
    """The echo of our own create can overtake the outbound worker's mapping write: the
    external record carries our id, so link it instead of creating a second customer."""
    internal_id = change.customer.internal_id
    if internal_id is None or await uow.mappings.get(internal_id, change.system) is not None:
        return None
    customer = await uow.customers.get(internal_id)
    if customer is None:
        return None
    mapping = ExternalMapping(
        customer_id=customer.id, system=change.system, external_id=change.external_id,
        synced=change.customer.data, synced_version=customer.version if customer.data == change.customer.data else 0,
        synced_at=now,
    )
    await uow.mappings.save(mapping)
    return mapping


async def _create(uow: UnitOfWork, change: ExternalChange, now: datetime) -> tuple[int, str | None]:
    # Mirrored as the external system has it: nothing it accepted is refused here.
    customer = await uow.customers.add(change.customer.data, now)
    await record_change(uow, customer, ChangeKind.CREATED, origin=change.system)
    await uow.mappings.save(
        ExternalMapping(customer_id=customer.id, system=change.system, external_id=change.external_id,
                        synced=change.customer.data, synced_version=customer.version, synced_at=now)
    )
    return customer.id, f"created from {change.system}"


async def _update(
    uow: UnitOfWork, customer: Customer, mapping: ExternalMapping, change: ExternalChange, now: datetime, policy: ConflictPolicy
) -> str | None:
    merge = merge_inbound(customer, mapping, change.customer.data, change.occurred_at, policy)
    if merge.is_echo:
        return "no change (echo of a synced state)"
    revised = customer.revised(merge.data, now)
    if revised is not customer:
        # Re-broadcast unless the catalog kept a value of its own: then the origin needs it too.
        await record_change(uow, revised, ChangeKind.UPDATED, origin=None if merge.kept_internal else change.system)
    if revised.data == merge.baseline:
        await uow.mappings.save(mapping.synced_to(revised, merge.baseline, now))
    else:
        await uow.mappings.save(mapping.rebased(merge.baseline, now))
    if merge.conflicts:
        winner = "catalog" if merge.kept_internal else change.system
        return f"conflict on {', '.join(sorted(merge.conflicts))}: {policy.value} -> {winner} value kept"
    return None


async def give_up_inbound(change: ExternalChange, error: str, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
    """Record the dead inbound change in the customer's history (it went to the dead-letter topic)."""
    async with uow_factory() as uow:
        mapping = await uow.mappings.by_external_id(change.system, change.external_id)
        now = clock.now()
        record = SyncRecord.pending(
            change.event_id, mapping.customer_id if mapping else None, Direction.INBOUND, change.system,
            _OPERATIONS[change.kind], now,
        )
        await uow.sync_records.save(record.failed(now, error, dead=True))
        await uow.commit()
