"""Inbound sync: apply one external change to the catalog, exactly once per event id.

Events arrive duplicated and out of order, and Stripe stamps them in whole seconds, so an event's
snapshot may be older than what the catalog already holds. An event whose snapshot equals the
mapping's baseline says nothing new (an echo of our own write, or a state since superseded by an
event of its own) and is applied without any call. Any other event is treated as a hint: the
customer is re-fetched and its *current* state is applied, so that no delivery order can leave
the catalog older than the external system.
"""

from __future__ import annotations

from datetime import datetime

from application.customers.changes import record_change
from application.ports import Clock, Integrations, UnitOfWork, UnitOfWorkFactory
from domain.conflicts import ConflictPolicy
from domain.customer import Customer
from domain.mapping import ExternalMapping
from domain.messages import ChangeKind, ExternalChange, ExternalCustomer
from domain.reconcile import merge_inbound
from domain.sync import Direction, Operation, SyncRecord

_OPERATIONS = {ChangeKind.CREATED: Operation.CREATE, ChangeKind.UPDATED: Operation.UPDATE, ChangeKind.DELETED: Operation.DELETE}


async def sync_inbound(
    change: ExternalChange, uow_factory: UnitOfWorkFactory, integrations: Integrations, clock: Clock, policy: ConflictPolicy
) -> None:
    """The catalog write, the inbox entry and the sync record commit together, so a redelivered
    event is a no-op. A change applied here is re-broadcast with ``origin`` set: it reaches
    every *other* integration but is never pushed back to where it came from."""
    async with uow_factory() as uow:
        if await uow.inbox.seen(change.system, change.event_id):
            return
        mapping = await uow.mappings.by_external_id(change.system, change.external_id)
    external, fetched = change.customer, False
    if _could_be_stale(change, mapping):
        # Outside any transaction: never hold the database while calling out.
        current = await integrations[change.system].retrieve_customer(change.external_id)
        external = current or ExternalCustomer(external_id=change.external_id, data=change.customer.data, deleted=True)
        fetched = True
    async with uow_factory() as uow:
        if await uow.inbox.seen(change.system, change.event_id):
            return  # another worker applied it meanwhile
        now = clock.now()
        customer_id, note = await _apply(uow, change, external, now, policy)
        if fetched:
            note = f"{note}; re-fetched" if note else "re-fetched"
        record = SyncRecord.pending(change.event_id, customer_id, Direction.INBOUND, change.system, _OPERATIONS[change.kind], now)
        await uow.sync_records.save(record.succeeded(now, note))
        await uow.inbox.add(change.system, change.event_id, now)
        await uow.commit()


def _could_be_stale(change: ExternalChange, mapping: ExternalMapping | None) -> bool:
    if change.kind is ChangeKind.DELETED or change.customer.deleted:
        return False  # deletion is final: no later state can undo it
    return mapping is None or change.customer.data != mapping.synced


async def _apply(
    uow: UnitOfWork, change: ExternalChange, external: ExternalCustomer, now: datetime, policy: ConflictPolicy
) -> tuple[int | None, str | None]:
    mapping = await uow.mappings.by_external_id(change.system, change.external_id)
    if mapping is None:
        mapping = await _link_own_create(uow, change.system, external, now)
        linked = mapping and await uow.customers.get(mapping.customer_id)
        if linked and linked.deleted:
            # Our create landed, but the customer was deleted here before we knew its id: the
            # delete found nothing to delete then, so send it again now.
            await record_change(uow, linked, ChangeKind.DELETED)
            return linked.id, "linked a customer deleted here: deleting it there too"
    if mapping is None:
        if external.deleted:
            return None, "unknown customer: nothing to delete"
        return await _create(uow, change.system, external, now)
    customer = await uow.customers.get(mapping.customer_id)
    if customer is None or customer.deleted:
        return mapping.customer_id, "customer is deleted here: ignored"
    if external.deleted:
        tombstone = customer.tombstone(now)
        await record_change(uow, tombstone, ChangeKind.DELETED, origin=change.system)
        await uow.mappings.save(mapping.synced_to(tombstone, mapping.synced, now))
        return customer.id, None
    return customer.id, await _update(uow, customer, mapping, change, external, now, policy)


async def _link_own_create(uow: UnitOfWork, system: str, external: ExternalCustomer, now: datetime) -> ExternalMapping | None:
    """The echo of our own create can overtake the outbound worker's mapping write: the
    external record carries our id, so link it instead of creating a second customer."""
    if external.internal_id is None or external.deleted or await uow.mappings.get(external.internal_id, system) is not None:
        return None
    customer = await uow.customers.get(external.internal_id)
    if customer is None:
        return None
    in_sync = customer.data == external.data and not customer.deleted
    mapping = ExternalMapping(
        customer_id=customer.id, system=system, external_id=external.external_id, synced=external.data,
        synced_version=customer.version if in_sync else 0, synced_at=now,
    )
    await uow.mappings.save(mapping)
    await uow.create_intents.remove(customer.id, system)
    return mapping


async def _create(uow: UnitOfWork, system: str, external: ExternalCustomer, now: datetime) -> tuple[int, str | None]:
    # Mirrored as the external system has it: nothing it accepted is refused here.
    customer = await uow.customers.add(external.data, now)
    await record_change(uow, customer, ChangeKind.CREATED, origin=system)
    await uow.mappings.save(
        ExternalMapping(customer_id=customer.id, system=system, external_id=external.external_id,
                        synced=external.data, synced_version=customer.version, synced_at=now)
    )
    return customer.id, f"created from {system}"


async def _update(
    uow: UnitOfWork, customer: Customer, mapping: ExternalMapping, change: ExternalChange, external: ExternalCustomer,
    now: datetime, policy: ConflictPolicy,
) -> str | None:
    merge = merge_inbound(customer, mapping, external.data, change.occurred_at, policy)
    if merge.is_echo:
        if customer.data != mapping.synced:
            # Our own change is still waiting, perhaps held back as a conflict that this event
            # turns out not to be (the external side is back at the baseline): send it again.
            await record_change(uow, customer, ChangeKind.UPDATED)
            return "no change there; our pending change is sent again"
        return "no change (echo of a synced state)"
    revised = customer.revised(merge.data, now)
    if revised is not customer or merge.kept_internal:
        # Re-broadcast unless the catalog kept a value of its own: then the origin needs it too,
        # even when nothing changed here.
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
