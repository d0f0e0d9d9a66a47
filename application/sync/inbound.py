"""Inbound sync: apply one external change to the catalog, exactly once per event id.

Events arrive duplicated and out of order, and Stripe stamps them in whole seconds, so an event's
snapshot may be older than what the catalog already holds. An event whose snapshot equals the
mapping's baseline says nothing new (an echo of our own write, or a state since superseded by an
event of its own) and is applied without any call. Any other event is treated as a hint: the
customer is re-fetched and its *current* state is applied, so that no delivery order can leave
the catalog older than the external system. What each event says it changed, and when, is kept
per field (``ExternalMapping.external_writes``) for ``latest_wins``.
"""

from __future__ import annotations

import logging
from datetime import datetime

from application.customers.changes import STORE_ATTEMPTS, record_change, retried_on_concurrent_update
from application.errors import AmbiguousImport, ExternalCustomerMissing, MappingBroken
from application.ports import Clock, Integrations, UnitOfWork, UnitOfWorkFactory
from application.sync.context import SyncContext
from domain.customer import SYNCED_FIELDS, Customer, CustomerData
from domain.drift import email_key
from domain.mapping import ExternalMapping, FieldWrite
from domain.messages import ChangeKind, ExternalChange, ExternalCustomer
from domain.ownership import Claim, is_own_write, proves_own_create
from domain.plans import InboundMerge, merge_inbound
from domain.safety import must_refetch
from domain.sync import Direction, Handled, Operation, Outcome, SyncRecord

log = logging.getLogger(__name__)
_OPERATIONS = {ChangeKind.CREATED: Operation.CREATE, ChangeKind.UPDATED: Operation.UPDATE, ChangeKind.DELETED: Operation.DELETE}


async def sync_inbound(change: ExternalChange, integrations: Integrations, ctx: SyncContext) -> Handled:
    """The catalog write, the inbox entry and the sync record commit together, so a redelivered
    event is a no-op. A change applied here is re-broadcast with ``origin`` set: it reaches
    every *other* integration but is never pushed back to where it came from. Returns what it
    came to (a redelivery: ``duplicate``)."""
    async with ctx.uow_factory() as uow:
        if await uow.inbox.seen(change.system, change.event_id):
            return Handled(change.system, Direction.INBOUND, Outcome.DUPLICATE)
        mapping = await uow.mappings.by_external_id(change.system, change.external_id)
        # A deletion of a customer deleted here already (the echo of ours, mostly) changes nothing,
        # whatever a re-fetch would answer: it is not asked (a deletion hint costs calls otherwise).
        settled_here = (
            change.customer.deleted
            and mapping is not None
            and getattr(await uow.customers.get(mapping.customer_id), "deleted", False)
        )
    external, fetched = change.customer, False
    if must_refetch(change, mapping.synced if mapping is not None else None) and not settled_here:
        # Outside any transaction: never hold the database while calling out.
        try:
            external = await integrations[change.system].retrieve_customer(change.external_id)
        except ExternalCustomerMissing:
            await ctx.accounts.verify(integrations[change.system], now=True)  # the customer, or the account?
            return await retried_on_concurrent_update(lambda: _unknown_there(ctx, change), STORE_ATTEMPTS)
        fetched = True
    return await retried_on_concurrent_update(lambda: _apply_once(ctx, change, external, fetched), STORE_ATTEMPTS)


async def _apply_once(ctx: SyncContext, change: ExternalChange, external: ExternalCustomer, fetched: bool) -> Handled:
    async with ctx.uow_factory() as uow:
        if await uow.inbox.seen(change.system, change.event_id):
            return Handled(change.system, Direction.INBOUND, Outcome.DUPLICATE)  # another worker applied it meanwhile
        now = ctx.clock.now()
        customer_id, note = await _apply(uow, change, external, now, ctx)
        if fetched:
            note = f"{note}; re-fetched" if note else "re-fetched"
        record = await _settle(uow, change, customer_id, note, now)
        await uow.commit()
    return Handled.settled(record, change.occurred_at)


async def _settle(
    uow: UnitOfWork, change: ExternalChange, customer_id: int | None, note: str | None, now: datetime
) -> SyncRecord:
    record = SyncRecord.pending(change.event_id, customer_id, Direction.INBOUND, change.system, _OPERATIONS[change.kind], now)
    await uow.sync_records.save(done := record.succeeded(now, note))
    await uow.inbox.add(change.system, change.event_id, now)
    return done


async def _unknown_there(ctx: SyncContext, change: ExternalChange) -> Handled:
    """The re-fetch answered 404: another account or mode (domain.safety). A mapped customer's
    link breaks and the message waits in the dead-letter store; nothing in the catalog changes."""
    async with ctx.uow_factory() as uow:
        mapping = await uow.mappings.by_external_id(change.system, change.external_id)
        reason = (
            f"{change.system} does not know {change.external_id} (404): another account or mode, or a restored "
            "database; nothing was changed in the catalog"
        )
        if mapping is None:
            record = await _settle(uow, change, None, f"ignored: {reason}", ctx.clock.now())
            await uow.commit()
            return Handled.settled(record, change.occurred_at)
        await uow.mappings.save(mapping.marked_broken(reason))
        await uow.commit()
    raise MappingBroken(f"{reason}; the link of customer {mapping.customer_id} is marked broken")


async def _apply(
    uow: UnitOfWork, change: ExternalChange, external: ExternalCustomer, now: datetime, ctx: SyncContext
) -> tuple[int | None, str | None]:
    mapping = await uow.mappings.by_external_id(change.system, change.external_id)
    if mapping is None:
        # The event's snapshot shows the tags as our create wrote them (a re-fetch may show them
        # edited since, or none at all once deleted); either proves it, if it does.
        linked = None
        for claim in (change.customer.claim, external.claim):
            linked = linked or await _link_own_create(uow, change.system, claim, external.external_id, now, ctx.installation)
        if linked is None:
            if external.deleted:
                return None, "unknown customer: nothing to delete"
            if not change.observed:  # a reconcile's own import: its run has just decided
                await _hold_ambiguous(uow, change.system, external)
            return await _import(uow, change, external, now, ctx)
        mapping, customer = linked
        if customer.deleted and not external.deleted:
            # Proven ours (its create key), but deleted here before we knew its id: the delete
            # found nothing to delete then, so send the user's deletion again now.
            await record_change(uow, customer, ChangeKind.DELETED)
            return customer.id, "linked our own create of a customer deleted here: deleting it there too"
    found = await uow.customers.get(mapping.customer_id)
    if found is None or found.deleted:
        return mapping.customer_id, "customer is deleted here: ignored"
    customer = found
    known = mapping
    writes = _writes(change, mapping, ctx.installation, external.data)
    mapping = mapping.with_external_writes(writes)
    if external.deleted:
        tombstone = customer.tombstone(now)
        await record_change(uow, tombstone, ChangeKind.DELETED, origin=change.system)
        await uow.mappings.save(mapping.synced_to(tombstone, mapping.synced, now))
        return customer.id, None
    if change.forced:
        return customer.id, await _pulled(uow, customer, mapping, change, external, now)
    # Fields this event changed that the system no longer holds as it says (a later write there, or
    # ours over it: under internal_wins an update is written without a read, domain.plans).
    gone_by = frozenset(f for f, w in writes.items() if getattr(external.data, f) != w.value)
    return customer.id, await _update(
        uow, customer, mapping, change, external, now, ctx, learned=mapping is not known, superseded=gone_by
    )


async def _pulled(
    uow: UnitOfWork,
    customer: Customer,
    mapping: ExternalMapping,
    change: ExternalChange,
    external: ExternalCustomer,
    now: datetime,
) -> str:
    """An operator's pull: the external state, whatever the baseline and the policy say."""
    revised = customer.revised(external.data, now)
    if revised is not customer:
        await record_change(uow, revised, ChangeKind.UPDATED, origin=change.system)
    await uow.mappings.save(mapping.sent_cleared().synced_to(revised, external.data, now))
    fields = ", ".join(sorted(customer.data.changed_fields(external.data)))
    return f"pulled from {change.system} by an operator (resync): {fields or 'already equal'}"


def _writes(
    change: ExternalChange, mapping: ExternalMapping | None, installation: str, current: CustomerData
) -> dict[str, FieldWrite]:
    """What this event says was changed over there, and when -- unless it is our own write. An
    event that does not say which fields it changed, or whose cause is unknown, counts the fields
    its snapshot holds differently from the baseline (an echo of ours looks like the baseline).

    A state whose last writer was us (``by_us``) may still hold a person's change to another field,
    made before our write: counted from the ``current`` state (what the system holds now), dated
    by our write at the latest. Its snapshot is not: the values of ours it shows may be gone since
    (a late read-back of our own create)."""
    if change.kind is ChangeKind.DELETED or change.observed or is_own_write(change.request_key, installation):
        return {}  # an observed state dates no change: it never says when a field changed there
    snapshot = current if change.by_us else change.customer.data
    fields = set(change.changed_fields if change.changed_fields is not None else SYNCED_FIELDS)
    if mapping is not None and (change.changed_fields is None or not change.cause_known):
        fields = {f for f in fields if getattr(snapshot, f) != getattr(mapping.synced, f)}
    if change.by_us and mapping is not None:  # a value a push of ours sent is ours, not a person's
        fields = {f for f in fields if not any(s.value == getattr(snapshot, f) for s in mapping.sent.get(f, ()))}
    return {f: FieldWrite(getattr(snapshot, f), change.occurred_at) for f in fields}


async def _link_own_create(
    uow: UnitOfWork, system: str, claim: Claim, external_id: str, now: datetime, installation: str
) -> tuple[ExternalMapping, Customer] | None:
    """The echo of our own create can overtake the outbound worker's mapping write. Link it only
    on proof that our create made it (domain.ownership): its tags name this installation, the
    customer, and the key of the create intent still waiting for its answer. The baseline is what
    that create sent, so that whatever changed over there since is seen as a change."""
    if claim.internal_id is None:
        return None
    intent = await uow.create_intents.get(claim.internal_id, system)
    if not proves_own_create(claim, installation, intent) or await uow.mappings.get(claim.internal_id, system) is not None:
        return None
    assert intent is not None
    customer = await uow.customers.get(claim.internal_id)
    if customer is None:
        return None
    in_sync = customer.data == intent.data and not customer.deleted
    mapping = await uow.mappings.save(
        ExternalMapping(
            customer_id=customer.id,
            system=system,
            external_id=external_id,
            synced=intent.data,
            synced_version=customer.version if in_sync else 0,
            synced_at=now,
        )
    )
    await uow.create_intents.remove(customer.id, system)
    return mapping, customer


async def _hold_ambiguous(uow: UnitOfWork, system: str, external: ExternalCustomer) -> None:
    """Live sync does not match people by email, but it does not make one twice on a guess either:
    a record whose email the last reconcile found shared with unlinked catalog customers (an
    ``ambiguous`` finding left for a person) is not imported while such a customer is unlinked."""
    key = email_key(external.data.email)
    if key is None or not await uow.reconcile.ambiguous_emails(system, [key]):
        return
    namesakes = (await uow.reconcile.unlinked_customer_ids(system, [key])).get(key, [])
    if namesakes:
        ids = ", ".join(map(str, namesakes[:5])) + (", ..." if len(namesakes) > 5 else "")
        raise AmbiguousImport(
            f"{system} {external.external_id} shares the email {key} with catalog customer(s) {ids}, linked to nothing in "
            f"{system}, an ambiguous case of the last reconcile: not imported, so that no one is made twice; link them "
            f"(`custsync reconcile --match-by email`) or tell them apart, then replay"
        )


async def _import(
    uow: UnitOfWork, change: ExternalChange, external: ExternalCustomer, now: datetime, ctx: SyncContext
) -> tuple[int, str | None]:
    """A customer we did not make: a new catalog customer, never merged into an existing one --
    whatever its metadata claims (domain.ownership). Mirrored as the system has it: nothing it
    accepted is refused here."""
    customer = await uow.customers.add(external.data, now)
    await record_change(uow, customer, ChangeKind.CREATED, origin=change.system)
    await uow.mappings.save(
        ExternalMapping(
            customer_id=customer.id,
            system=change.system,
            external_id=external.external_id,
            synced=external.data,
            synced_version=customer.version,
            synced_at=now,
            external_writes=_writes(change, None, ctx.installation, external.data),
        )
    )
    note = f"created from {change.system}"
    claim = external.claim
    if not claim.empty:
        owner = (
            "this installation" if claim.installation == ctx.installation else f"installation {claim.installation or '(none)'}"
        )
        note += f"; its metadata claims catalog id {claim.internal_id} of {owner}, unproven: imported as a new customer"
        if claim.internal_id is not None and await uow.customers.get(claim.internal_id) is not None:
            note += f" (customer {claim.internal_id} exists: not merged)"
            log.warning(
                "%s %s claims catalog id %s without proof: imported as customer %s, not merged",
                change.system,
                external.external_id,
                claim.internal_id,
                customer.id,
            )
    return customer.id, note


async def _update(
    uow: UnitOfWork,
    customer: Customer,
    mapping: ExternalMapping,
    change: ExternalChange,
    external: ExternalCustomer,
    now: datetime,
    ctx: SyncContext,
    *,
    learned: bool,
    superseded: frozenset[str] = frozenset(),
) -> str | None:
    # The earliest a re-fetched state can date from: the newest event seen of that customer.
    state_at = max([change.occurred_at, *(w.at for w in mapping.external_writes.values())])
    merge = merge_inbound(customer, mapping, external.data, state_at, ctx.policy, settle_unknown=change.observed)
    if merge.is_echo:
        if learned:
            await uow.mappings.save(mapping)  # what the event told of its changes is kept even so
        note = await _echo(uow, customer, mapping, merge, change, ctx)
        if superseded:  # kept whatever else happened: under internal_wins it may be our write over it
            gone = f"superseded: {change.system} no longer holds this event's {', '.join(sorted(superseded))}"
            return f"{gone}; {note}"
        return note
    revised = customer.revised(merge.data, now, merge.times)
    if revised is not customer or merge.kept_internal:
        # Re-broadcast to the origin too when the catalog kept a value of its own, or took a
        # change the external side no longer holds (our older push overwrote it there).
        back = merge.kept_internal or any(getattr(revised.data, f) != getattr(external.data, f) for f in merge.external_changes)
        await record_change(uow, revised, ChangeKind.UPDATED, origin=None if back else change.system)
    if revised.data == merge.baseline:
        await uow.mappings.save(mapping.synced_to(revised, merge.baseline, now))
    else:
        await uow.mappings.save(mapping.rebased(merge.baseline, now))
    if merge.conflicts:
        waiting = merge.conflicts & merge.deferred
        decided = merge.conflicts - waiting
        parts = []
        if decided:
            winner = "catalog" if decided <= merge.kept_internal else change.system
            parts.append(f"conflict on {', '.join(sorted(decided))}: {ctx.policy.value} -> {winner} value kept")
        if waiting:
            parts.append(
                f"conflict on {', '.join(sorted(waiting))}: {ctx.policy.value} -> waiting for the {change.system} event's time"
            )
        return "; ".join(parts)
    return None


async def _echo(
    uow: UnitOfWork, customer: Customer, mapping: ExternalMapping, merge: InboundMerge, change: ExternalChange, ctx: SyncContext
) -> str:
    if customer.data.changed_fields(mapping.synced) - merge.deferred or merge.stale_ours:
        # Our own change is still waiting, perhaps held back as a conflict that this event
        # turns out not to be (the external side is back at the baseline): send it again.
        await record_change(uow, customer, ChangeKind.UPDATED)
        return "no change there; our pending change is sent again"
    if merge.deferred:
        return (
            f"conflict on {', '.join(sorted(merge.deferred))}: {ctx.policy.value} -> waiting for the {change.system} event's time"
        )
    return "no change (echo of a synced state)"


async def give_up_inbound(change: ExternalChange, error: str, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
    """Record the dead inbound change in the customer's history (it went to the dead-letter topic)."""
    async with uow_factory() as uow:
        mapping = await uow.mappings.by_external_id(change.system, change.external_id)
        now = clock.now()
        record = SyncRecord.pending(
            change.event_id,
            mapping.customer_id if mapping else None,
            Direction.INBOUND,
            change.system,
            _OPERATIONS[change.kind],
            now,
        )
        await uow.sync_records.save(record.failed(now, error, dead=True))
        await uow.commit()
