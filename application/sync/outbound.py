"""Outbound sync: push one catalog change to every integration except the one it came from.

Every rule that may destroy data is named in ``domain.safety`` / ``domain.ownership``: a 404 is
never a deletion (``_unknown_there`` breaks the link instead), and a create is linked to an
existing external record only on proof that our own create made it (``find_own_create``).
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import msgspec

from application.customers.changes import STORE_ATTEMPTS, record_change, retried_on_concurrent_update
from application.errors import (
    AmbiguousExport,
    ExternalCustomerMissing,
    IntegrationError,
    MappingBroken,
    RetryableIntegrationError,
)
from application.ports import Clock, Integration, Integrations, UnitOfWork, UnitOfWorkFactory
from application.sync.context import SyncContext as Context
from application.sync.creates import create, create_intent, store_create
from application.sync.lookup import find_own_create
from domain.conflicts import ConflictPolicy
from domain.customer import SYNCED_FIELDS, Customer, CustomerData
from domain.drift import email_key
from domain.errors import ConcurrentUpdate
from domain.mapping import CreateIntent, ExternalMapping
from domain.messages import ChangeKind, CustomerChanged, ExternalCustomer
from domain.ownership import OwnershipTag, claimed_by_another_installation, write_key
from domain.plans import (
    OutboundPlan,
    blind_plan,
    newer_external_writes,
    outbound_changes,
    plan_update,
    reads_before_writing,
)
from domain.safety import proves_deletion
from domain.sync import Direction, Handled, Operation, Outcome, SyncRecord


class _Outcome(msgspec.Struct, frozen=True):
    operation: Operation
    note: str | None = None
    created: ExternalCustomer | None = None
    plan: OutboundPlan | None = None  # an update: what both sides now agree on, what was adopted
    intent: CreateIntent | None = None  # a create: the request that made it
    gone: bool = False  # the external customer was deleted there (proven: domain.safety)
    drop_intent: bool = False  # the saved create intent is settled without a create of its own
    planned_on: int | None = None  # an update: the version of the link its plan was made on


async def sync_outbound(event: CustomerChanged, integrations: Integrations, ctx: Context) -> list[Handled]:
    """Push the customer's *current* state (not the event's snapshot), so that replays and
    reordering converge. A system whose record for this event is settled is skipped, so a
    redelivered event never repeats a call that already succeeded. Returns what it came to at
    each system."""
    return [await _sync_one(event, integration, ctx) for integration in integrations.values()]


async def _sync_one(event: CustomerChanged, integration: Integration, ctx: Context) -> Handled:
    system = integration.system
    async with ctx.uow_factory() as uow:
        record = await uow.sync_records.get(event.event_id, system, Direction.OUTBOUND)
        if record is not None and record.status.settled:
            return Handled(system, Direction.OUTBOUND, Outcome.DUPLICATE)
        # The link before the customer: two statements see two moments, and an inbound change
        # committed between them then shows as a customer newer than its link's baseline (sent
        # again, harmlessly: it is what the system holds) -- never as an old customer against the
        # new baseline, which would push the old value over the change.
        mapping = await uow.mappings.get(event.customer_id, system)
        customer = await uow.customers.get(event.customer_id)
        intent = None
        if customer is not None and mapping is None and event.origin != system:
            if customer.deleted:  # a create of ours may have landed before the customer was deleted
                intent = await uow.create_intents.get(customer.id, system)
            else:
                if not event.forced_at(system) and await uow.create_intents.get(customer.id, system) is None:
                    await _hold_ambiguous(uow, customer, system)
                intent = await create_intent(uow, customer, system, ctx)
    if customer is None:
        return Handled(system, Direction.OUTBOUND, Outcome.UNCHANGED)
    # No transaction is open while the external system is called.
    try:
        outcome = await _call(integration, event, customer, mapping, intent, ctx)
    except IntegrationError as exc:
        await _record_failure(ctx, event, system, record, intent, exc)
        raise
    if outcome is None:  # it came from there: nothing is sent back
        return Handled(system, Direction.OUTBOUND, Outcome.ECHO)
    done = await retried_on_concurrent_update(
        lambda: _store_outcome(ctx, event, system, record, customer, outcome), STORE_ATTEMPTS
    )
    return Handled.settled(done, event.occurred_at)


async def _hold_ambiguous(uow: UnitOfWork, customer: Customer, system: str) -> None:
    """The mirror of the inbound rule: a customer whose email the last reconcile found shared with
    unlinked records there (``ambiguous``, left for a person) is not created there; a reconcile's
    export (forced) or an operator's resync is."""
    key = email_key(customer.email)
    if key is not None and await uow.reconcile.ambiguous_emails(system, [key]):
        raise AmbiguousExport(
            f"customer {customer.id} shares the email {key} with {system} customers linked to nothing here, an ambiguous "
            f"case of the last reconcile: not created in {system}, so that no one is made twice; link them "
            f"(`custsync reconcile --match-by email`) or tell them apart, then replay"
        )


async def _record_failure(
    ctx: Context,
    event: CustomerChanged,
    system: str,
    record: SyncRecord | None,
    intent: CreateIntent | None,
    exc: IntegrationError,
) -> None:
    async def attempt() -> None:
        async with ctx.uow_factory() as uow:
            failed = record or _pending(event, system, Operation.CREATE if intent is not None else Operation.UPDATE, ctx.clock)
            # A write can land and still fail (a timeout): keep the conflict it settled in the history.
            failed = msgspec.structs.replace(failed, note=exc.conflict_note or failed.note)
            await uow.sync_records.save(failed.failed(ctx.clock.now(), str(exc), dead=not exc.retryable))
            if exc.drops_intent and intent is not None:
                await uow.create_intents.remove(intent.customer_id, system)
            mapping = await uow.mappings.get(event.customer_id, system) if isinstance(exc, MappingBroken) else None
            if mapping is not None:
                await uow.mappings.save(mapping.marked_broken(str(exc)))
            await uow.commit()

    await retried_on_concurrent_update(attempt, STORE_ATTEMPTS)


async def _call(
    integration: Integration,
    event: CustomerChanged,
    customer: Customer,
    mapping: ExternalMapping | None,
    intent: CreateIntent | None,
    ctx: Context,
) -> _Outcome | None:
    if event.origin == integration.system:
        if event.tags and mapping is not None and not customer.deleted:
            return await _tag(integration, customer, mapping, ctx)  # created over there: tag it as ours
        return None  # the change came from there: nothing to send back
    if customer.deleted:
        return await _delete(integration, customer, mapping, intent, ctx)
    if mapping is None:
        assert intent is not None
        return _Outcome(Operation.CREATE, created=await create(integration, customer, intent, ctx), intent=intent)
    if (
        event.forced_at(integration.system) and event.kind is not ChangeKind.CREATED
    ):  # a forced create found linked is a plain update
        return await _push(integration, customer, mapping, ctx)
    return await _update(integration, customer, mapping, ctx)


async def _push(integration: Integration, customer: Customer, mapping: ExternalMapping, ctx: Context) -> _Outcome:
    """An operator's push: the catalog's state is written there, whatever the baseline and the
    policy say. A customer deleted there stays deleted (and is deleted here: a deletion is final)."""
    found = await _retrieve(integration, mapping, ctx)
    gone = _Outcome(Operation.UPDATE, note=f"deleted in {integration.system}: deleted here too", gone=True)
    if proves_deletion(found):
        return gone
    send = {f: getattr(customer.data, f) for f in SYNCED_FIELDS if getattr(found.data, f) != getattr(customer.data, f)}
    plan = OutboundPlan(
        send=send,
        baseline=msgspec.structs.asdict(customer.data),
        adopt={},
        adopt_times={},
        deferred=frozenset(),
        conflicts=frozenset(),
    )
    if send:
        mapping = await _sending(ctx, mapping, send, found.data)
        try:
            await integration.update_customer(mapping.external_id, send, idempotency_key=write_key(ctx.installation, "update"))
        except ExternalCustomerMissing:
            await _confirm_deleted(integration, mapping, ctx)
            return gone
    note = f"pushed to {integration.system} by an operator (resync): {', '.join(sorted(send)) or 'already equal'}"
    return _Outcome(Operation.UPDATE, plan=plan, note=note, planned_on=mapping.version)


async def _tag(integration: Integration, customer: Customer, mapping: ExternalMapping, ctx: Context) -> _Outcome:
    found = await _retrieve(integration, mapping, ctx)
    if proves_deletion(found):
        return _Outcome(Operation.UPDATE, note=f"deleted in {integration.system} before linking", gone=True)
    if claimed_by_another_installation(found.claim, ctx.installation):
        return _Outcome(
            Operation.UPDATE, note=f"tagged by another installation ({found.claim.installation}): its tags left as they are"
        )
    if found.claim.internal_id not in (None, customer.id):
        # A bare internal_id of someone else's (another tool, a custsync from before tags): theirs.
        return _Outcome(Operation.UPDATE, note=f"carries internal_id {found.claim.internal_id} of someone else: left as it is")
    if (found.claim.installation, found.claim.internal_id) == (ctx.installation, customer.id):
        return _Outcome(Operation.UPDATE, note="already tagged")
    await ctx.accounts.verify(integration)
    try:
        await integration.link_customer(
            mapping.external_id,
            OwnershipTag(internal_id=customer.id, installation=ctx.installation),
            idempotency_key=write_key(ctx.installation, "link"),
        )
    except ExternalCustomerMissing:
        await _confirm_deleted(integration, mapping, ctx)
        return _Outcome(Operation.UPDATE, note=f"deleted in {integration.system} before linking", gone=True)
    return _Outcome(Operation.UPDATE, note=f"linked to catalog id {customer.id}")


async def _delete(
    integration: Integration, customer: Customer, mapping: ExternalMapping | None, intent: CreateIntent | None, ctx: Context
) -> _Outcome:
    if mapping is None:
        if intent is None:
            return _Outcome(Operation.DELETE, note="never synced")
        found = await find_own_create(integration, intent, ctx.installation)
        if found is None:
            return _Outcome(Operation.DELETE, note="never synced (its create made nothing)", drop_intent=True)
        # Proven ours (its create key): the deletion the user asked for. Missing meanwhile: deleted
        # already (the list showed it, so it is no other account's).
        with contextlib.suppress(ExternalCustomerMissing):
            await integration.delete_customer(found.external_id)
        return _Outcome(Operation.DELETE, note=f"deleted {found.external_id}, which a create of ours had made", drop_intent=True)
    if mapping.synced_version >= customer.version:
        return _Outcome(Operation.DELETE, note="already deleted")
    try:
        await integration.delete_customer(mapping.external_id)
    except ExternalCustomerMissing:
        await _confirm_deleted(integration, mapping, ctx)
        return _Outcome(Operation.DELETE, note="already gone", gone=True)
    return _Outcome(Operation.DELETE, gone=True)


async def _update(integration: Integration, customer: Customer, mapping: ExternalMapping, ctx: Context) -> _Outcome:
    latest = ctx.policy is ConflictPolicy.LATEST_WINS
    nothing_pending = not outbound_changes(customer, mapping) and not mapping.sent and mapping.broken is None
    if nothing_pending and not (latest and newer_external_writes(customer, mapping)):
        return _Outcome(Operation.UPDATE, note="no change")
    gone = _Outcome(Operation.UPDATE, note=f"deleted in {integration.system}: deleted here too", gone=True)
    if reads_before_writing(ctx.policy, mapping):
        # Read before writing: a field changed over there too is a conflict the policy must settle
        # (and record), and a field already equal needs no write.
        found = await _retrieve(integration, mapping, ctx)
        if proves_deletion(found):
            return gone
        held: CustomerData | None = found.data
        plan = plan_update(customer, mapping, found.data, ctx.policy, ctx.clock.now())
        note = _conflict_note(plan, ctx.policy, integration.system)
    else:  # internal_wins, nothing in doubt: one call (domain.plans.reads_before_writing)
        held, plan, note = None, blind_plan(customer, mapping), None
    if plan.send:
        # Saved before the call, like a create intent: if the write lands and its answer is lost,
        # what the external side then holds is known to be ours, not someone's change.
        mapping = await _sending(ctx, mapping, plan.send, held)
        try:
            await integration.update_customer(
                mapping.external_id, plan.send, idempotency_key=write_key(ctx.installation, "update")
            )
        except ExternalCustomerMissing:
            await _confirm_deleted(integration, mapping, ctx)
            return gone
        except IntegrationError as exc:
            exc.conflict_note = note
            raise
    return _Outcome(Operation.UPDATE, plan=plan, note=note, planned_on=mapping.version)


async def _sending(
    ctx: Context, mapping: ExternalMapping, values: dict[str, str | None], held: CustomerData | None
) -> ExternalMapping:
    try:
        async with ctx.uow_factory() as uow:
            saved = await uow.mappings.save(mapping.sending(values, ctx.clock.now(), held))
            await uow.commit()
    except ConcurrentUpdate:
        raise RetryableIntegrationError("the link changed while the update was planned: planning again") from None
    return saved


async def _retrieve(integration: Integration, mapping: ExternalMapping, ctx: Context) -> ExternalCustomer:
    try:
        return await integration.retrieve_customer(mapping.external_id)
    except ExternalCustomerMissing as exc:
        # Is it this customer, or the whole account? Another account pauses sync (AccountChanged).
        await ctx.accounts.verify(integration, now=True)
        raise _unknown_there(integration.system, mapping) from exc


async def _confirm_deleted(integration: Integration, mapping: ExternalMapping, ctx: Context) -> None:
    """A write answered 404: Stripe says so for a deleted customer *and* for one it never had.
    Only a re-fetch saying ``deleted: true`` makes it a deletion (domain.safety)."""
    found = await _retrieve(integration, mapping, ctx)
    if not proves_deletion(found):
        raise RetryableIntegrationError(f"{integration.system} answered 404 for {mapping.external_id}, which it still has")


def _unknown_there(system: str, mapping: ExternalMapping) -> MappingBroken:
    return MappingBroken(
        f"{system} does not know {mapping.external_id} (404): another account or mode, or a restored database; "
        f"the link of customer {mapping.customer_id} is marked broken and nothing was changed in the catalog"
    )


def _conflict_note(plan: OutboundPlan, policy: ConflictPolicy, system: str) -> str | None:
    if not plan.conflicts:
        return None if plan.send or plan.adopt else "no change (already equal)"
    fields = ", ".join(sorted(plan.conflicts))
    if plan.adopt and set(plan.adopt) & plan.conflicts:
        return f"conflict on {fields}: {policy.value} -> {system} value kept"
    if plan.deferred:
        return f"conflict on {fields}: {policy.value} -> settled by the {system} event's time"
    return f"conflict on {fields}: {policy.value} -> catalog value kept"


async def _store_outcome(
    ctx: Context, event: CustomerChanged, system: str, record: SyncRecord | None, customer: Customer, outcome: _Outcome
) -> SyncRecord:
    async with ctx.uow_factory() as uow:
        await _store(uow, outcome, customer, system, ctx)
        record = record or _pending(event, system, outcome.operation, ctx.clock)
        note = outcome.note
        if record.note and record.note.startswith("conflict") and not (note or "").startswith("conflict"):
            note = record.note  # an earlier attempt settled the conflict; this one found it done
        done = msgspec.structs.replace(record, operation=outcome.operation).succeeded(ctx.clock.now(), note)
        await uow.sync_records.save(done)
        await uow.commit()
    return done


async def _store(uow: UnitOfWork, outcome: _Outcome, customer: Customer, system: str, ctx: Context) -> None:
    now = ctx.clock.now()
    if outcome.drop_intent:
        await uow.create_intents.remove(customer.id, system)
    # Re-read: an inbound change may have moved the mapping while the call was in flight.
    mapping = await uow.mappings.get(customer.id, system)
    if outcome.created is not None and outcome.intent is not None:
        await store_create(uow, outcome.created, outcome.intent, customer, mapping, now)
        if outcome.created.deleted:  # made by our create, then deleted there by a person (domain.safety)
            await _deleted_there(uow, customer, system, now)
    elif mapping is None:
        return
    elif outcome.gone:
        await _deleted_there(uow, customer, system, now)
    elif outcome.plan is not None and mapping.version != outcome.planned_on:
        # An inbound change moved the link while we wrote: the plan was made on what it replaced.
        # What we sent is kept in ``mapping.sent``; a fresh plan decides what is left to do.
        current = await uow.customers.get(customer.id) or customer
        if not current.deleted:
            await record_change(uow, current, ChangeKind.UPDATED)
    elif outcome.plan is not None:
        await _store_update(uow, outcome.plan, customer, mapping, system, now)
    elif not customer.deleted and mapping.synced == customer.data and mapping.synced_version < customer.version:
        # Equal content, older stamp: catch the stamp up. Never for a tombstone, whose cleared
        # data can equal an empty baseline while the external customer still lives.
        await uow.mappings.save(mapping.synced_to(customer, mapping.synced, now))


async def _store_update(
    uow: UnitOfWork, plan: OutboundPlan, customer: Customer, mapping: ExternalMapping, system: str, now: datetime
) -> None:
    baseline = msgspec.structs.replace(mapping.synced, **plan.baseline)
    current = await uow.customers.get(customer.id) or customer
    synced = customer
    if plan.adopt and not current.deleted:
        adopted = current.revised(msgspec.structs.replace(current.data, **plan.adopt), now, plan.adopt_times)
        if adopted is not current:
            # Sent back out unless the external side already holds every adopted value.
            in_place = all(getattr(baseline, f) == v for f, v in plan.adopt.items())
            await record_change(uow, adopted, ChangeKind.UPDATED, origin=system if in_place else None)
            current = synced = adopted
    mapping = mapping.sent_cleared()  # what we sent is the baseline now
    if plan.deferred:
        await uow.mappings.save(mapping.rebased(baseline, now))
    else:
        await uow.mappings.save(mapping.synced_to(synced, baseline, now))
    if not current.deleted and current.version != synced.version and current.data.changed_fields(baseline) - plan.deferred:
        # The catalog moved while we wrote (an inbound change adopted meanwhile): what it holds now
        # differs from what the external side holds after our write, so send it.
        await record_change(uow, current, ChangeKind.UPDATED)


async def _deleted_there(uow: UnitOfWork, customer: Customer, system: str, now: datetime) -> None:
    """A deletion proven over there (a deletion event, or ``deleted: true`` on a re-fetch)."""
    current = await uow.customers.get(customer.id) or customer
    if not current.deleted:
        current = current.tombstone(now)
        await record_change(uow, current, ChangeKind.DELETED, origin=system)
    mapping = await uow.mappings.get(customer.id, system)
    if mapping is not None:
        await uow.mappings.save(mapping.synced_to(current, mapping.synced, now))


def _pending(event: CustomerChanged, system: str, operation: Operation, clock: Clock) -> SyncRecord:
    return SyncRecord.pending(event.event_id, event.customer_id, Direction.OUTBOUND, system, operation, clock.now())


async def give_up_outbound(
    event: CustomerChanged, error: str, uow_factory: UnitOfWorkFactory, integrations: Integrations, clock: Clock
) -> None:
    """Mark every unsettled record of this event dead (it went to the dead-letter topic)."""
    async with uow_factory() as uow:
        for system in integrations:
            record = await uow.sync_records.get(event.event_id, system, Direction.OUTBOUND)
            if record is None or not record.status.settled:
                record = record or _pending(event, system, Operation.UPDATE, clock)
                await uow.sync_records.save(record.failed(clock.now(), error, dead=True))
        await uow.commit()
