"""Outbound sync: apply one catalog change to every integration except the one it came from."""

from __future__ import annotations

from datetime import datetime

import msgspec

from application.errors import ExternalCustomerMissing, IntegrationError
from application.customers.changes import record_change
from application.ports import Clock, Integration, Integrations, UnitOfWork, UnitOfWorkFactory
from domain.conflicts import ConflictPolicy
from domain.customer import Customer
from domain.mapping import CreateIntent, ExternalMapping
from domain.messages import ChangeKind, CustomerChanged, ExternalCustomer
from domain.reconcile import OutboundPlan, outbound_changes, plan_update
from domain.sync import Direction, Operation, SyncRecord


class _Outcome(msgspec.Struct, frozen=True):
    operation: Operation
    note: str | None = None
    created: ExternalCustomer | None = None
    plan: OutboundPlan | None = None  # an update: what both sides now agree on, what was adopted
    intent: CreateIntent | None = None  # a create: the request that made it
    gone: bool = False  # the external customer no longer exists


async def sync_outbound(
    event: CustomerChanged, uow_factory: UnitOfWorkFactory, integrations: Integrations, clock: Clock,
    policy: ConflictPolicy,
) -> None:
    """Push the customer's *current* state (not the event's snapshot), so that replays and
    reordering converge. A system whose record for this event is settled is skipped, so a
    redelivered event never repeats a call that already succeeded."""
    for integration in integrations.values():
        await _sync_one(event, integration, uow_factory, clock, policy)


async def _sync_one(
    event: CustomerChanged, integration: Integration, uow_factory: UnitOfWorkFactory, clock: Clock, policy: ConflictPolicy
) -> None:
    system = integration.system
    async with uow_factory() as uow:
        record = await uow.sync_records.get(event.event_id, system, Direction.OUTBOUND)
        if record is not None and record.status.settled:
            return
        customer = await uow.customers.get(event.customer_id)
        mapping = await uow.mappings.get(event.customer_id, system)
        intent = None
        if customer is not None and not customer.deleted and mapping is None and event.origin != system:
            intent = await _create_intent(uow, customer, system, event, clock)
    if customer is None:
        return
    # No transaction is open while the external system is called.
    try:
        outcome = await _call(integration, event, customer, mapping, policy, intent)
    except IntegrationError as exc:
        record = record or _pending(event, system, Operation.UPDATE, clock)
        # A write can land and still fail (a timeout): keep the conflict it settled in the history.
        record = msgspec.structs.replace(record, note=getattr(exc, "conflict_note", None) or record.note)
        async with uow_factory() as uow:
            await uow.sync_records.save(record.failed(clock.now(), str(exc), dead=not exc.retryable))
            await uow.commit()
        raise
    if outcome is None:
        return
    async with uow_factory() as uow:
        await _store(uow, outcome, customer, system, clock)
        record = record or _pending(event, system, outcome.operation, clock)
        note = outcome.note
        if record.note and record.note.startswith("conflict") and not (note or "").startswith("conflict"):
            note = record.note  # an earlier attempt settled the conflict; this one found it done
        await uow.sync_records.save(msgspec.structs.replace(record, operation=outcome.operation).succeeded(clock.now(), note))
        await uow.commit()


async def _create_intent(uow: UnitOfWork, customer: Customer, system: str, event: CustomerChanged, clock: Clock) -> CreateIntent:
    """The create to send, saved before it is sent; an earlier one, if any, is repeated as it was."""
    await uow.create_intents.add(CreateIntent(
        customer_id=customer.id, system=system, idempotency_key=f"{event.event_id}:create", data=customer.data,
        created_at=clock.now(),
    ))
    intent = await uow.create_intents.get(customer.id, system)
    await uow.commit()
    assert intent is not None
    return intent


async def _call(
    integration: Integration, event: CustomerChanged, customer: Customer, mapping: ExternalMapping | None,
    policy: ConflictPolicy, intent: CreateIntent | None = None,
) -> _Outcome | None:
    if event.origin == integration.system:
        if event.kind is ChangeKind.CREATED and mapping is not None and not customer.deleted:
            # Created over there: write our id back into the external record (Stripe: metadata).
            try:
                await integration.link_customer(mapping.external_id, customer.id)
            except ExternalCustomerMissing:  # deleted over there before we could tag it
                return _Outcome(Operation.UPDATE, note=f"deleted in {integration.system} before linking", gone=True)
            return _Outcome(Operation.UPDATE, note=f"linked to catalog id {customer.id}")
        return None  # the change came from there: nothing to send back
    if customer.deleted:
        if mapping is None:
            return _Outcome(Operation.DELETE, note="never synced")
        if mapping.synced_version >= customer.version:
            return _Outcome(Operation.DELETE, note="already deleted")
        try:
            await integration.delete_customer(mapping.external_id)
        except ExternalCustomerMissing:
            return _Outcome(Operation.DELETE, note="already gone", gone=True)
        return _Outcome(Operation.DELETE, gone=True)
    if mapping is None:
        assert intent is not None
        created = await integration.create_customer(intent.data, internal_id=customer.id, idempotency_key=intent.idempotency_key)
        return _Outcome(Operation.CREATE, created=created, intent=intent)
    if not outbound_changes(customer, mapping):
        return _Outcome(Operation.UPDATE, note="no change")
    gone = _Outcome(Operation.UPDATE, note=f"deleted in {integration.system}: deleted here too", gone=True)
    # Read before writing: a field changed over there too is a conflict the policy must settle
    # (and record), and a field already equal needs no write.
    found = await integration.retrieve_customer(mapping.external_id)
    if found is None or found.deleted:
        return gone
    plan = plan_update(customer, mapping, found.data, policy)
    note = _conflict_note(plan, policy, integration.system)
    if plan.send:
        try:
            await integration.update_customer(mapping.external_id, plan.send)
        except ExternalCustomerMissing:
            return gone
        except IntegrationError as exc:
            exc.conflict_note = note  # type: ignore[attr-defined]
            raise
    return _Outcome(Operation.UPDATE, plan=plan, note=note)


def _conflict_note(plan: OutboundPlan, policy: ConflictPolicy, system: str) -> str | None:
    if not plan.conflicts:
        return None if plan.send else "no change (already equal)"
    fields = ", ".join(sorted(plan.conflicts))
    if plan.adopt:
        return f"conflict on {fields}: {policy.value} -> {system} value kept"
    if plan.deferred:
        return f"conflict on {fields}: {policy.value} -> settled by the {system} event's time"
    return f"conflict on {fields}: {policy.value} -> catalog value kept"


async def _store(uow: UnitOfWork, outcome: _Outcome, customer: Customer, system: str, clock: Clock) -> None:
    now = clock.now()
    # Re-read: an inbound change may have moved the mapping while the call was in flight.
    mapping = await uow.mappings.get(customer.id, system)
    if outcome.created is not None and outcome.intent is not None:
        await _store_create(uow, outcome.created, outcome.intent, customer, mapping, now)
    elif mapping is None:
        return
    elif outcome.gone:
        current = await uow.customers.get(customer.id) or customer
        if not current.deleted:
            current = current.tombstone(now)
            await record_change(uow, current, ChangeKind.DELETED, origin=system)
        await uow.mappings.save(mapping.synced_to(current, mapping.synced, now))
    elif outcome.plan is not None:
        await _store_update(uow, outcome.plan, customer, mapping, system, now)
    elif not customer.deleted and mapping.synced == customer.data and mapping.synced_version < customer.version:
        # Equal content, older stamp: catch the stamp up. Never for a tombstone, whose cleared
        # data can equal an empty baseline while the external customer still lives.
        await uow.mappings.save(mapping.synced_to(customer, mapping.synced, now))


async def _store_create(
    uow: UnitOfWork, created: ExternalCustomer, intent: CreateIntent, customer: Customer, mapping: ExternalMapping | None,
    now: datetime,
) -> None:
    await uow.create_intents.remove(customer.id, intent.system)
    if mapping is None:  # (the echo of this create may have linked it already)
        mapping = ExternalMapping(customer_id=customer.id, system=intent.system, external_id=created.external_id,
                                  synced=intent.data, synced_version=0, synced_at=now)
    current = await uow.customers.get(customer.id) or customer
    if current.data == intent.data and not current.deleted:
        await uow.mappings.save(mapping.synced_to(current, intent.data, now))
        return
    await uow.mappings.save(mapping.rebased(intent.data, now))
    # Created with the fields of an earlier attempt: send what changed (or the deletion) since.
    await record_change(uow, current, ChangeKind.DELETED if current.deleted else ChangeKind.UPDATED)


async def _store_update(
    uow: UnitOfWork, plan: OutboundPlan, customer: Customer, mapping: ExternalMapping, system: str, now: datetime
) -> None:
    baseline = msgspec.structs.replace(mapping.synced, **plan.agreed, **plan.adopt)
    if plan.adopt:
        current = await uow.customers.get(customer.id) or customer
        adopted = current.revised(msgspec.structs.replace(current.data, **plan.adopt), now)
        if adopted is not current and not current.deleted:
            await record_change(uow, adopted, ChangeKind.UPDATED, origin=system)
            customer = adopted
    if plan.deferred:
        await uow.mappings.save(mapping.rebased(baseline, now))
    else:
        await uow.mappings.save(mapping.synced_to(customer, baseline, now))


def _pending(event: CustomerChanged, system: str, operation: Operation, clock: Clock) -> SyncRecord:
    return SyncRecord.pending(event.event_id, event.customer_id, Direction.OUTBOUND, system, operation, clock.now())


async def give_up_outbound(event: CustomerChanged, error: str, uow_factory: UnitOfWorkFactory, integrations: Integrations, clock: Clock) -> None:
    """Mark every unsettled record of this event dead (it went to the dead-letter topic)."""
    async with uow_factory() as uow:
        for system in integrations:
            record = await uow.sync_records.get(event.event_id, system, Direction.OUTBOUND)
            if record is None or not record.status.settled:
                record = record or _pending(event, system, Operation.UPDATE, clock)
                await uow.sync_records.save(record.failed(clock.now(), error, dead=True))
        await uow.commit()
