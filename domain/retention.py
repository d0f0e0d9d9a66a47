"""Retention: how long what sync leaves behind is kept, and a deleted customer's personal data scrubbed.

Every rule here decides that something may be forgotten; the storage adapters apply them
(``adapters/*/retention.py``) and ``application.sync.retention`` runs them from the worker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from domain.customer import Customer, CustomerData
from domain.dead_letters import DeadLetter
from domain.mapping import CreateIntent, ExternalMapping
from domain.messages import (
    INBOUND_TOPIC,
    OUTBOUND_TOPIC,
    REJECTED_WEBHOOK_TOPIC,
    CustomerChanged,
    ExternalChange,
    UndecodableMessage,
    decode,
    encode,
)

# The inbox is what makes a redelivered event a no-op, so it must outlive every redelivery: Stripe
# retries a webhook for 3 days, and its events API (which catch-up reads back after an outage)
# lists 30 days of events. An inbox entry is written no earlier than its event was made, so one
# older than 30 days names an event nothing can deliver again.
MIN_RETENTION_DAYS = 30

SCRUBBED = "[scrubbed]"  # what an email mentioned in a note or an error becomes


def deletion_settled(customer: Customer, mappings: Iterable[ExternalMapping], unpublished: bool, in_flight: bool) -> bool:
    """Rule "scrub only a settled deletion": a deleted customer's personal data is scrubbed once no
    event of it waits in the outbox (``unpublished``), no call of ours about it may still land
    (``in_flight``: a create intent waits for its answer with no link made yet, or a sync record of
    it is pending or retrying -- a create that lands after a scrub would link it with the values
    it sent), and
    every link has carried the deletion over (its baseline is at the tombstone's version). Nothing the
    outbound delete needs is personal (the external id, the create intent's key), but until then its
    events are still on their way:
    the baselines kept meanwhile let the inbound side tell the echoes of our own writes without a
    re-fetch. A deletion still retried, dead-lettered or behind a broken link keeps its data until
    it settles (a replay carries it; the next pass scrubs)."""
    return customer.deleted and not unpublished and not in_flight and all(m.synced_version >= customer.version for m in mappings)


def scrubbed_event(event: CustomerChanged) -> CustomerChanged | None:
    """The event without what it said of the person (``data``); ``None`` if it says nothing already.
    The worker pushes a customer's current state, never an event's snapshot, so nothing reads it."""
    return None if event.data is None else msgspec.structs.replace(event, data=None)


def scrubbed_mapping(mapping: ExternalMapping) -> ExternalMapping | None:
    """The link without the values both sides agreed on, the values an event told of and those a
    push sent: all the person's. Its external id stays -- it is what keeps a late event of that
    record from being imported as a new customer -- as does its version stamp (``synced_version``),
    which says the deletion was carried over. ``None`` if there is nothing to scrub."""
    if mapping.synced == CustomerData() and not mapping.external_writes and not mapping.sent:
        return None
    return msgspec.structs.replace(mapping, synced=CustomerData(), external_writes={}, sent={})


def scrubbed_intent(intent: CreateIntent) -> CreateIntent | None:
    """A create intent of a deleted customer is only ever looked up by its key (``find_own_create``),
    never sent again: its fields can go."""
    return None if intent.data == CustomerData() else msgspec.structs.replace(intent, data=CustomerData())


def emails_of(*data: CustomerData | None) -> set[str]:
    return {d.email for d in data if d is not None and d.email}


def mapping_emails(mapping: ExternalMapping) -> set[str]:
    """Every email a link holds: its baseline, what events told of, what pushes sent."""
    found = emails_of(mapping.synced)
    if (write := mapping.external_writes.get("email")) is not None:
        found |= {v for v in (write.value, *write.tied) if v}
    found |= {s.value for s in mapping.sent.get("email", ()) if s.value}
    return found


def redacted(text: str | None, emails: Iterable[str]) -> str | None:
    """``text`` with every mention of ``emails`` replaced (ignoring case: a note may hold the
    lower-cased key of an email, and an error may quote it as the other side wrote it). Names are
    left: short common words cannot be told from the rest of a sentence, and no note quotes one."""
    for email in sorted(set(emails), key=len, reverse=True):
        if text:
            text = re.sub(re.escape(email), SCRUBBED, text, flags=re.IGNORECASE)
    return text


class ScrubbedPayload(msgspec.Struct, frozen=True):
    payload: bytes
    emails: frozenset[str]  # what the payload named: mentions of them in error texts go too


def scrubbed_letter(letter: DeadLetter, external_ids: Iterable[str]) -> ScrubbedPayload | None:
    """The dead letter's payload without the deleted customer's personal data, if it carries some:
    an outbound event's ``data``, an inbound change's snapshot (its claim stays: it is no one's
    name), a refused webhook's customer object (reduced to its id). A payload that cannot be read
    is left as it is (nothing can tell what it holds). ``external_ids``: the customer's ids over
    there, which a refused webhook is recognised by (it is kept under the system's name)."""
    if letter.topic == OUTBOUND_TOPIC:
        event = _decoded(letter.payload, CustomerChanged)
        scrubbed = None if event is None else scrubbed_event(event)
        if scrubbed is None:
            return None
        return ScrubbedPayload(encode(scrubbed), frozenset(emails_of(event.data)))
    if letter.topic == INBOUND_TOPIC:
        change = _decoded(letter.payload, ExternalChange)
        if change is None or change.customer.data == CustomerData():
            return None
        customer = msgspec.structs.replace(change.customer, data=CustomerData())
        return ScrubbedPayload(
            encode(msgspec.structs.replace(change, customer=customer)), frozenset(emails_of(change.customer.data))
        )
    if letter.topic == REJECTED_WEBHOOK_TOPIC:
        return _scrubbed_webhook(letter.payload, set(external_ids))
    return None


def _decoded(payload: bytes, kind: type) -> Any:
    try:
        return decode(payload, kind)
    except UndecodableMessage:
        return None


def _scrubbed_webhook(payload: bytes, external_ids: set[str]) -> ScrubbedPayload | None:
    """A refused event stays an event (id, type, time: what an operator reads in the list), but of
    its customer object -- the whole Stripe customer, address and phone included -- only the id."""
    try:
        event = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict):
        return None
    obj = data.get("object")
    if not isinstance(obj, dict) or obj.get("id") not in external_ids:
        return None
    kept = {k: obj[k] for k in ("id", "object") if k in obj}
    if data == {"object": kept}:
        return None  # scrubbed already
    previous = data.get("previous_attributes")
    emails = {v.get("email") for v in (obj, previous) if isinstance(v, dict) and isinstance(v.get("email"), str)}
    return ScrubbedPayload(msgspec.json.encode({**event, "data": {"object": kept}}), frozenset(e for e in emails if e))
