"""Links between a catalog customer and its twin in an external system."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from domain.customer import Customer, CustomerData


class FieldWrite(msgspec.Struct, frozen=True):
    """One field's value as an external change set it, and when (the event's time, whole seconds).

    Two changes of one field stamped in the same second have no knowable order (Stripe's ``created``
    is whole seconds and event ids are not ordered): the greater value stands for that second, so
    that the outcome is the same whatever order their events arrive in; ``tied`` keeps the others,
    so that they are still recognised as known values, not as changes still to come."""

    value: str | None
    at: datetime
    tied: tuple[str | None, ...] = ()

    def newer_than(self, other: FieldWrite | None) -> bool:
        if other is None:
            return True
        return int(self.at.timestamp()) > int(other.at.timestamp())

    def merged(self, other: FieldWrite | None) -> FieldWrite:
        """The newest of the two; within one second, the greater value, the others kept as ``tied``."""
        if other is None or self.newer_than(other):
            return self
        if other.newer_than(self):
            return other
        values = {self.value, other.value, *self.tied, *other.tied}
        top = max(values, key=lambda v: v or "")
        return FieldWrite(top, min(self.at, other.at), tuple(sorted((v for v in values if v != top), key=lambda v: v or "")))

    def knows(self, value: str | None) -> bool:
        """Is ``value`` one this write (or a change of the same second) set?"""
        return value == self.value or value in self.tied


class SentValue(msgspec.Struct, frozen=True, array_like=True):
    value: str | None
    at: datetime


class ExternalMapping(msgspec.Struct, frozen=True, kw_only=True):
    """Customer ``customer_id`` is ``external_id`` in ``system``.

    ``synced`` is the content both sides agreed on at ``synced_version`` of the customer: the
    baseline that tells our own echoes from real external changes, and local edits from
    conflicting ones. ``external_writes`` holds, per field, the newest change made over there
    (not by us) that an event told us of: what ``latest_wins`` weighs against the catalog's own
    change times. ``version`` guards every write of the mapping (optimistic concurrency).
    ``broken`` says why the link cannot be used (the external id is unknown to the account).
    """

    customer_id: int
    system: str
    external_id: str
    synced: CustomerData
    synced_version: int
    synced_at: datetime
    external_writes: dict[str, FieldWrite] = msgspec.field(default_factory=dict)
    broken: str | None = None
    version: int = 0
    # Values our pushes wrote or may have written over there, each with when it was sent (saved
    # before the call, cleared once a push is stored): an external value equal to one of them is
    # our own write that landed, not a change over there -- unless an event of someone else's
    # named that value since.
    sent: dict[str, list[SentValue]] = msgspec.field(default_factory=dict)

    def in_sync_with(self, customer: Customer) -> bool:
        caught_up = self.synced_version >= customer.version
        return self.broken is None and caught_up and (customer.deleted or self.synced == customer.data)

    def synced_to(self, customer: Customer, external: CustomerData, at: datetime) -> ExternalMapping:
        return msgspec.structs.replace(self, synced=external, synced_version=customer.version, synced_at=at, broken=None)

    def rebased(self, external: CustomerData, at: datetime) -> ExternalMapping:
        """A new baseline while the catalog still has changes of its own to send."""
        return msgspec.structs.replace(self, synced=external, synced_at=at, broken=None)

    def holds_our_write(self, field: str, value: str | None) -> bool:
        theirs = self.external_writes.get(field)
        return any(
            s.value == value
            and not (theirs is not None and theirs.knows(value) and int(theirs.at.timestamp()) >= int(s.at.timestamp()))
            for s in self.sent.get(field, ())
        )

    def sending(self, values: dict[str, str | None], at: datetime, held: CustomerData | None = None) -> ExternalMapping:
        """``values`` about to be sent. What an earlier push sent that the external side does not
        hold now (``held``, just read) cannot land any more -- one push at a time per customer --
        so it is forgotten."""
        sent = {f: [s for s in entries if held is None or getattr(held, f) == s.value] for f, entries in self.sent.items()}
        for f, value in values.items():
            sent[f] = [s for s in sent.get(f, []) if s.value != value] + [SentValue(value, at)]
        return msgspec.structs.replace(self, sent={f: entries for f, entries in sent.items() if entries})

    def sent_cleared(self) -> ExternalMapping:
        return msgspec.structs.replace(self, sent={}) if self.sent else self

    def marked_broken(self, reason: str) -> ExternalMapping:
        return msgspec.structs.replace(self, broken=reason[:500])

    def with_external_writes(self, writes: dict[str, FieldWrite]) -> ExternalMapping:
        """Keep, per field, the newest of what we knew and ``writes`` (a max: arrival order is irrelevant)."""
        merged = dict(self.external_writes)
        for field, write in writes.items():
            merged[field] = write.merged(merged.get(field))
        return self if merged == self.external_writes else msgspec.structs.replace(self, external_writes=merged)


class CreateIntent(msgspec.Struct, frozen=True, kw_only=True):
    """A create we are about to send, saved first: every later attempt, whatever event triggers it,
    repeats exactly this request (same idempotency key, same fields), so the external system
    answers with the customer it already made instead of making a second one."""

    customer_id: int
    system: str
    idempotency_key: str
    data: CustomerData
    created_at: datetime

    def key_may_have_expired(self, now: datetime) -> bool:
        """Stripe keeps an idempotency key for 24 hours: past ~23, repeating the request could
        make a second customer, so whether the first one landed must be looked up first."""
        return now - self.created_at >= KEY_SAFE_LIFETIME


KEY_SAFE_LIFETIME = timedelta(hours=23)
