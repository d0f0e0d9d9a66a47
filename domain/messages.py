"""The messages that travel on the sync topics, and their wire codec (JSON via msgspec)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

import msgspec

from domain.customer import CustomerData
from domain.ownership import NO_CLAIM, Claim

OUTBOUND_TOPIC = "sync.outbound"
INBOUND_TOPIC = "sync.inbound"
SYNC_TOPICS = (OUTBOUND_TOPIC, INBOUND_TOPIC)
# Not a broker topic: where refused webhooks are kept among the dead letters (a replay dismisses them).
REJECTED_WEBHOOK_TOPIC = "webhooks.rejected"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def new_event_id() -> str:
    return str(uuid.uuid4())


class ChangeKind(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


class CustomerChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A catalog customer changed (written to the outbox, published on ``sync.outbound``).

    ``origin`` names the external system the change came from, so that it is not sent back there;
    ``None`` means it was made through the catalog's own API.
    """

    event_id: str
    customer_id: int
    kind: ChangeKind
    version: int
    data: CustomerData | None
    occurred_at: datetime
    origin: str | None = None
    # Follows the change from the request (or webhook) that made it, for the logs only.
    correlation_id: str | None = None
    # An operator's push (``custsync resync``): the catalog's state is written there whatever the
    # baseline and the conflict policy say. On a create (a reconcile's export): decided by the
    # run, so never held as ambiguous (application.sync.outbound).
    forced: bool = False
    # The one system such a push or export is for; its other systems take it as a plain change.
    # ``forced`` is still written beside it: a worker of the previous version, during a rolling
    # upgrade, reads only that.
    forced_for: str | None = None

    def forced_at(self, system: str) -> bool:
        """Whether this event is an operator's push (or a reconcile's export) for ``system``. One
        written before ``forced_for`` existed names no system: it is forced for none (read again by
        a group that never saw it -- an integration enabled later -- it must not skip that
        system's rules), and taken as a plain change, which still sends the catalog's state."""
        return self.forced and self.forced_for == system

    def stands_for(self, earlier: CustomerChanged) -> bool:
        """Whether handling this event does everything handling ``earlier`` (of the same customer,
        published before it) would. Pushes are state-based (the customer's current state, not the
        event's snapshot), so of two events that ask the same thing -- the same origin, neither an
        operator's push nor the tag of a record created over there -- only the later one needs
        handling. An event from elsewhere asks for other sides, so it never stands for one from
        the catalog, nor the other way round."""
        return (
            self.customer_id == earlier.customer_id
            and self.origin == earlier.origin
            and not (self.forced or earlier.forced)
            and not (self.tags or earlier.tags)
        )

    @property
    def tags(self) -> bool:
        """A customer created over there and imported: its push tags that record as ours."""
        return self.kind is ChangeKind.CREATED and self.origin is not None


class ExternalCustomer(msgspec.Struct, frozen=True, kw_only=True):
    """A customer as an external system holds it."""

    external_id: str
    data: CustomerData
    claim: Claim = NO_CLAIM  # what it says about its catalog twin (Stripe: metadata) -- not a proof
    deleted: bool = False

    @property
    def internal_id(self) -> int | None:
        return self.claim.internal_id

    @classmethod
    def unread(cls, external_id: str) -> ExternalCustomer:
        """A record nothing was read of (an operator's pull, a reconcile fix resumed): it only says
        "deleted", which ``domain.safety`` never believes without a re-fetch -- so the current
        state decides (a deletion there, or a 404: a broken link, never a deletion)."""
        return cls(external_id=external_id, data=CustomerData(), deleted=True)


class ExternalChange(msgspec.Struct, frozen=True, kw_only=True):
    """A customer changed in an external system (published on ``sync.inbound``)."""

    event_id: str
    system: str
    kind: ChangeKind
    external_id: str
    occurred_at: datetime
    customer: ExternalCustomer
    # The synced fields this event changed (Stripe: ``previous_attributes``; every field for a
    # create); ``None`` when the system did not say.
    changed_fields: frozenset[str] | None = None
    # The idempotency key of the request that caused it (Stripe: ``request.idempotency_key``):
    # ours for our own writes. ``cause_known``: the system says what caused its events at all
    # (Stripe does; some Stripe-compatible servers do not), so a missing key means "not ours".
    request_key: str | None = None
    cause_known: bool = False
    # The system says our own credentials made it (Salesforce: ``LastModifiedById`` is this
    # installation's integration user): an echo of a write of ours, like a ``request_key`` of ours,
    # for a system whose writes carry no key.
    by_us: bool = False
    # A state read from the system (a reconcile, an operator's pull), not an event: it dates no
    # change, so it tells ``latest_wins`` nothing about when a field changed there.
    observed: bool = False
    # An operator's pull (``custsync resync --pull``): the external state replaces the catalog's,
    # whatever the baselines and the conflict policy say.
    forced: bool = False
    correlation_id: str | None = None  # the webhook request that brought it, for the logs only


class UndecodableMessage(ValueError):
    """A message on a sync topic is not what that topic carries; it goes to the dead-letter topic."""


M = TypeVar("M", CustomerChanged, ExternalChange)


def encode(message: CustomerChanged | ExternalChange) -> bytes:
    return msgspec.json.encode(message)


def decode(payload: bytes, kind: type[M]) -> M:
    try:
        return msgspec.json.decode(payload, type=kind)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise UndecodableMessage(f"not a {kind.__name__}: {exc}") from exc
