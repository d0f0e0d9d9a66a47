"""What one change writes where, as pure functions: the outbound plan (which fields an update
sends, and how a conflict settles) and the inbound merge (which fields a change takes). The
reconcile *run*, which compares whole systems, is elsewhere (``domain/drift.py``).

Every decision compares content with the mapping's baseline (what both sides last agreed on),
not with optional event fields: that is what tells an echo of our own write from a real change.

``latest_wins`` also weighs times, field by field: the catalog's own change time of the field
(``Customer.changed_at``) against the newest change made over there that an event told us of
(``ExternalMapping.external_writes``). Both are maxima over facts, so the winner depends on the
changes' times only, never on the order their events arrive in. A state we re-fetched has no
time of its own: a conflict over it waits for its event (``deferred``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from domain.conflicts import ConflictPolicy
from domain.customer import SYNCED_FIELDS, Customer, CustomerData
from domain.mapping import ExternalMapping, FieldWrite


def outbound_changes(customer: Customer, mapping: ExternalMapping) -> dict[str, str | None]:
    """The fields to send: those where the catalog differs from the baseline."""
    return {f: getattr(customer.data, f) for f in sorted(customer.data.changed_fields(mapping.synced))}


class Verdict(StrEnum):
    CATALOG = "catalog"
    EXTERNAL = "external"
    WAIT = "wait"  # the external value's time is not known yet: its event will settle it


def external_is_newer(write: FieldWrite, catalog_at: datetime) -> bool:
    """Whole seconds, as Stripe stamps events; a tie goes to the catalog."""
    return int(write.at.timestamp()) > int(catalog_at.timestamp())


def newer_external_writes(customer: Customer, mapping: ExternalMapping) -> dict[str, FieldWrite]:
    """``latest_wins``: fields where a change made over there is later than the catalog's value
    and differs from it -- that change wins, whatever the external side holds now (perhaps our
    own older push, which it overwrote)."""
    return {
        f: w
        for f, w in mapping.external_writes.items()
        if f in SYNCED_FIELDS and w.value != getattr(customer.data, f) and external_is_newer(w, customer.changed_at(f))
    }


def latest_verdict(customer: Customer, mapping: ExternalMapping, field: str, current: str | None) -> Verdict:
    """A ``latest_wins`` conflict on ``field``, the external side holding ``current``."""
    write = mapping.external_writes.get(field)
    if write is None or not write.knows(current):
        return Verdict.WAIT
    return Verdict.EXTERNAL if external_is_newer(write, customer.changed_at(field)) else Verdict.CATALOG


class InboundMerge(msgspec.Struct, frozen=True):
    data: CustomerData  # the catalog's new content
    times: dict[str, datetime]  # when each field taken from over there changed there
    baseline: CustomerData  # the mapping's new baseline
    external_changes: frozenset[str]  # fields taken from the external side
    conflicts: frozenset[str]  # fields both sides changed to different values
    kept_internal: frozenset[str]  # conflicting fields where the catalog's value won
    deferred: frozenset[str] = frozenset()  # conflicting fields waiting for the external event
    stale_ours: frozenset[str] = frozenset()  # fields holding an older push of ours: to be sent again

    @property
    def is_echo(self) -> bool:
        return not self.external_changes and not self.kept_internal


def merge_inbound(
    customer: Customer,
    mapping: ExternalMapping,
    external: CustomerData,
    state_at: datetime,
    policy: ConflictPolicy,
    *,
    settle_unknown: bool = False,
) -> InboundMerge:
    """Field by field: take what the external side changed, unless the catalog changed it too
    (to something else) and the policy says the catalog wins. ``state_at`` is the earliest the
    external state can date from (the newest event seen of that customer): the time of a value
    taken from it when no event dated that value.

    ``settle_unknown``: a ``latest_wins`` conflict whose external time no event has told (it
    would wait for that event) is settled for the catalog now -- a reconcile's state, read
    because the event may never come. Should the event come after all and date the external
    change later, ``latest_wins`` then takes it (``newer_external_writes``)."""
    newer = newer_external_writes(customer, mapping) if policy is ConflictPolicy.LATEST_WINS else {}
    take: dict[str, tuple[str | None, datetime]] = {}
    baseline = dict(msgspec.structs.asdict(mapping.synced))
    conflicts, kept, deferred, stale = set(), set(), set(), set()
    for f in SYNCED_FIELDS:
        current, ours, base = getattr(external, f), getattr(customer.data, f), getattr(mapping.synced, f)
        if current != ours and mapping.holds_our_write(f, current):
            stale.add(f)
        # A value our own push wrote (not yet stored as the baseline) is no change over there.
        theirs_changed = current != base and not mapping.holds_our_write(f, current)
        ours_changed = ours != base
        if f in newer:
            take[f] = (newer[f].value, newer[f].at)
            if ours_changed:
                conflicts.add(f)
            if current == newer[f].value:
                baseline[f] = current
            # else: the external side holds something else (our old push, or a change whose event
            # is still on its way); the baseline stays, so the outbound plan decides (or waits).
            continue
        if not theirs_changed:
            continue
        if ours_changed and current != ours:
            conflicts.add(f)
            verdict = _verdict(policy, customer, mapping, f, current)
            if verdict is Verdict.WAIT and settle_unknown:
                verdict = Verdict.CATALOG
            if verdict is Verdict.WAIT:
                deferred.add(f)
                continue
            baseline[f] = current
            if verdict is Verdict.CATALOG:
                kept.add(f)
                continue
        baseline[f] = current
        write = mapping.external_writes.get(f)
        take[f] = (current, write.at if write is not None and write.value == current else state_at)
    data = msgspec.structs.replace(customer.data, **{f: v for f, (v, _) in take.items()})
    return InboundMerge(
        data=data,
        times={f: at for f, (_, at) in take.items()},
        baseline=CustomerData(**baseline),
        external_changes=frozenset(take),
        conflicts=frozenset(conflicts),
        kept_internal=frozenset(kept),
        deferred=frozenset(deferred),
        stale_ours=frozenset(stale) - frozenset(take),
    )


def _verdict(policy: ConflictPolicy, customer: Customer, mapping: ExternalMapping, field: str, current: str | None) -> Verdict:
    if policy is ConflictPolicy.INTERNAL_WINS:
        return Verdict.CATALOG
    if policy is ConflictPolicy.EXTERNAL_WINS:
        return Verdict.EXTERNAL
    return latest_verdict(customer, mapping, field, current)


def reads_before_writing(policy: ConflictPolicy, mapping: ExternalMapping) -> bool:
    """Whether an outbound update must read the external record before writing.

    Under ``internal_wins`` a conflict always ends with the catalog's value written, so the read
    changes nothing that is sent: the fields the catalog changed since the baseline are written as
    they are (no other field is touched), a customer deleted there answers the write with a 404 that
    a re-fetch then proves (domain.safety), and a change made there meanwhile reaches us as its own
    event, which re-fetches and finds the catalog's value (or, for another field, its own). The read
    is still needed when an earlier push's outcome is unknown (``mapping.sent``: it may have landed,
    and only the external state tells), when the link is broken, and under the other policies,
    which may take the external value or weigh its time."""
    return policy is not ConflictPolicy.INTERNAL_WINS or bool(mapping.sent) or mapping.broken is not None


def blind_plan(customer: Customer, mapping: ExternalMapping) -> OutboundPlan:
    """An update written without a read (``reads_before_writing`` is false): the catalog's changes
    since the baseline are sent, and become the baseline once written."""
    changes = outbound_changes(customer, mapping)
    return OutboundPlan(
        send=changes, baseline=dict(changes), adopt={}, adopt_times={}, deferred=frozenset(), conflicts=frozenset()
    )


class OutboundPlan(msgspec.Struct, frozen=True):
    """What to send for an update, given what the external system holds now."""

    send: dict[str, str | None]  # fields to write over there
    baseline: dict[str, str | None]  # fields both sides hold once the write is done (the new baseline)
    adopt: dict[str, str | None]  # fields where the external change wins: taken into the catalog
    adopt_times: dict[str, datetime]  # when each adopted value changed over there
    deferred: frozenset[str]  # conflicting fields left for the external system's own event to settle
    conflicts: frozenset[str]  # fields the external side changed too, to another value


def plan_update(
    customer: Customer, mapping: ExternalMapping, current: CustomerData, policy: ConflictPolicy, now: datetime
) -> OutboundPlan:
    """Field by field against the baseline. A field the external side changed too (to another
    value) is a conflict: the catalog's value is written under ``internal_wins``, the external one
    adopted under ``external_wins``, and under ``latest_wins`` the later change wins -- once the
    external value's time is known from its event; until then it waits for that event."""
    changes = outbound_changes(customer, mapping)
    newer = newer_external_writes(customer, mapping) if policy is ConflictPolicy.LATEST_WINS else {}
    # A value our own push wrote (not yet stored as the baseline) is no change over there.
    theirs = {f for f in current.changed_fields(mapping.synced) if not mapping.holds_our_write(f, getattr(current, f))}
    conflicts = {f for f, v in changes.items() if f in theirs and getattr(current, f) != v}
    send: dict[str, str | None] = {}
    baseline: dict[str, str | None] = {}
    adopt: dict[str, str | None] = {}
    times: dict[str, datetime] = {}
    deferred: set[str] = set()
    for f, value in changes.items():
        if f in newer:
            continue
        held = getattr(current, f)
        verdict = _verdict(policy, customer, mapping, f, held) if f in conflicts else Verdict.CATALOG
        if verdict is Verdict.CATALOG:
            baseline[f] = value
            if held != value:
                send[f] = value
        elif verdict is Verdict.EXTERNAL:
            adopt[f] = baseline[f] = held
            write = mapping.external_writes.get(f)
            times[f] = write.at if write is not None and write.value == held else now
        else:
            deferred.add(f)
    for f in SYNCED_FIELDS:
        held, ours = getattr(current, f), getattr(customer.data, f)
        if f not in changes and f not in newer and held != ours and mapping.holds_our_write(f, held):
            # It holds an older push of ours that landed after all: the catalog's value goes out.
            send[f] = baseline[f] = ours
    for f, write in newer.items():
        held = getattr(current, f)
        adopt[f], times[f] = write.value, write.at
        if f in changes:
            conflicts.add(f)
        if held == write.value:
            baseline[f] = held
        elif (
            write.knows(held)
            or mapping.holds_our_write(f, held)
            or held in (getattr(mapping.synced, f), getattr(customer.data, f))
        ):
            # What it holds is no later than that change (an old value, our own push over it, or
            # a change of the same second that lost the tie).
            send[f] = baseline[f] = write.value
        else:
            deferred.add(f)  # holds a change whose event is still on its way: that event decides
    return OutboundPlan(
        send=send,
        baseline=baseline,
        adopt=adopt,
        adopt_times=times,
        deferred=frozenset(deferred),
        conflicts=frozenset(conflicts),
    )
