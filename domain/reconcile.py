"""The rules that reconcile the catalog with an external system, as pure functions.

Every decision compares content with the mapping's baseline (what both sides last agreed on),
not with optional event fields: that is what tells an echo of our own write from a real change.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from domain.conflicts import ConflictPolicy
from domain.customer import Customer, CustomerData
from domain.mapping import ExternalMapping


def outbound_changes(customer: Customer, mapping: ExternalMapping) -> dict[str, str | None]:
    """The fields to send: those where the catalog differs from the baseline."""
    return {f: getattr(customer.data, f) for f in sorted(customer.data.changed_fields(mapping.synced))}


class InboundMerge(msgspec.Struct, frozen=True):
    data: CustomerData  # the catalog's new content
    baseline: CustomerData  # the mapping's new baseline
    external_changes: frozenset[str]  # fields the external system changed since the baseline
    conflicts: frozenset[str]  # fields both sides changed to different values
    kept_internal: frozenset[str]  # conflicting fields where the catalog's value won

    @property
    def is_echo(self) -> bool:
        return not self.external_changes


def merge_inbound(
    customer: Customer, mapping: ExternalMapping, external: CustomerData, external_at: datetime, policy: ConflictPolicy
) -> InboundMerge:
    """Field by field: take what the external side changed, unless the catalog changed it too
    (to something else) and the policy says the catalog wins."""
    theirs = external.changed_fields(mapping.synced)
    ours = customer.data.changed_fields(mapping.synced)
    conflicts = frozenset(f for f in theirs & ours if getattr(customer.data, f) != getattr(external, f))
    external_wins = policy.external_wins(customer.updated_at, external_at)
    kept = frozenset() if external_wins else conflicts
    return InboundMerge(
        data=customer.data.merged(external, theirs - kept),
        # The baseline follows the external side: a value the catalog kept differs from it, so the
        # next outbound sync sends it and both sides end equal.
        baseline=mapping.synced.merged(external, theirs),
        external_changes=theirs,
        conflicts=conflicts,
        kept_internal=kept,
    )


class OutboundPlan(msgspec.Struct, frozen=True):
    """What to send for an update, given what the external system holds now."""

    send: dict[str, str | None]  # fields to write over there
    agreed: dict[str, str | None]  # fields both sides hold after the write (sent, or equal already)
    adopt: dict[str, str | None]  # conflicting fields where the external value wins: taken into the catalog
    deferred: frozenset[str]  # conflicting fields left for the external system's own event to settle
    conflicts: frozenset[str]  # fields the external side changed too, to another value


def plan_update(customer: Customer, mapping: ExternalMapping, current: CustomerData, policy: ConflictPolicy) -> OutboundPlan:
    """Field by field against the baseline. A field the external side changed too (to another
    value) is a conflict: the catalog's value is written under ``internal_wins``, the external one
    adopted under ``stripe_wins``, and under ``latest_wins`` it waits for the external event, whose
    timestamp tells which change was later (the customer object itself carries none)."""
    changes = outbound_changes(customer, mapping)
    theirs = current.changed_fields(mapping.synced)
    conflicts = frozenset(f for f, v in changes.items() if f in theirs and getattr(current, f) != v)
    contested = frozenset() if policy is ConflictPolicy.INTERNAL_WINS else conflicts
    agreed = {f: v for f, v in changes.items() if f not in contested}
    send = {f: v for f, v in agreed.items() if getattr(current, f) != v}
    adopt = {f: getattr(current, f) for f in contested} if policy is ConflictPolicy.EXTERNAL_WINS else {}
    deferred = contested if policy is ConflictPolicy.LATEST_WINS else frozenset()
    return OutboundPlan(send=send, agreed=agreed, adopt=adopt, deferred=deferred, conflicts=conflicts)
