"""Retention in the in-memory database (``Tables``): the same choices as adapters/postgres/retention.py."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from application.ports import EventsScrubbed, ScrubCandidate
from domain.customer import CustomerData
from domain.dead_letters import DeadLetter
from domain.mapping import ExternalMapping
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC, REJECTED_WEBHOOK_TOPIC
from domain.retention import (
    deletion_settled,
    emails_of,
    mapping_emails,
    redacted,
    scrubbed_event,
    scrubbed_intent,
    scrubbed_letter,
    scrubbed_mapping,
)
from domain.sync import FAILING, UNFINISHED, SyncStatus

if TYPE_CHECKING:
    from adapters.memory.database import Tables


class InMemoryRetention:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def prune_outbox(self, published_before: datetime, limit: int) -> int:
        old = sorted(
            (published, pos)
            for pos, (_, published) in self._t.outbox.items()
            if published is not None and published < published_before
        )[: max(0, limit)]
        for _, pos in old:
            del self._t.outbox[pos]
        return len(old)

    async def prune_inbox(self, processed_before: datetime, limit: int) -> int:
        old = sorted((at, key) for key, at in self._t.inbox.items() if at < processed_before)[: max(0, limit)]
        for _, key in old:
            del self._t.inbox[key]
        return len(old)

    async def prune_sync_records(self, settled_before: datetime, limit: int) -> int:
        records, seq = self._t.sync_records, self._t.record_seq
        links: dict[tuple[int, str, str], list[tuple[str, str, str]]] = {}  # the records of each link, oldest first
        for key in sorted(records, key=seq.__getitem__):
            r = records[key]
            if r.customer_id is not None:  # as SQL compares: NULL is no one's link
                links.setdefault((r.customer_id, r.system, r.direction.value), []).append(key)

        def holds_a_failure_back(key: tuple[str, str, str]) -> bool:
            """The newest record of its link, with a retrying or dead one before it."""
            r = records[key]
            mine = links.get((r.customer_id, r.system, r.direction.value), []) if r.customer_id is not None else []
            return bool(mine) and mine[-1] == key and any(records[k].status in FAILING for k in mine[:-1])

        old = sorted(
            (r.updated_at, seq[k], k)
            for k, r in records.items()
            if r.status is SyncStatus.SUCCEEDED and r.updated_at < settled_before and not holds_a_failure_back(k)
        )[: max(0, limit)]
        for _, _, key in old:
            del records[key], seq[key]
        return len(old)

    async def prune_dead_letters(self, replayed_before: datetime, limit: int) -> int:
        old = sorted(
            (d.replayed_at, d.id)
            for d in self._t.dead_letters.values()
            if d.replayed_at is not None and d.replayed_at < replayed_before
        )[: max(0, limit)]
        for _, letter_id in old:
            del self._t.dead_letters[letter_id]
        return len(old)

    async def unscrubbed(self, after_id: int | None, limit: int) -> list[ScrubCandidate]:
        ids = sorted(
            cid
            for cid, c in self._t.customers.items()
            if c.deleted and cid not in self._t.scrubbed and (after_id is None or cid > after_id)
        )[: max(0, limit)]
        waiting = self._unpublished()
        in_flight = self._in_flight()
        return [
            ScrubCandidate(
                self._t.customers[cid],
                sorted((m for (c, _), m in self._t.mappings.items() if c == cid), key=lambda m: m.system),
                cid in waiting,
                cid in in_flight,
            )
            for cid in ids
        ]

    def _unpublished(self) -> set[int]:
        return {event.customer_id for event, published in self._t.outbox.values() if published is None}

    def _in_flight(self) -> set[int]:
        """Customers with a create waiting for its answer (an intent, no link yet in its system), or a
        sync record pending or retrying."""
        unsettled = {r.customer_id for r in self._t.sync_records.values() if r.status in UNFINISHED}
        waiting = {cid for cid, system in self._t.create_intents if (cid, system) not in self._t.mappings}
        return waiting | {cid for cid in unsettled if cid is not None}

    async def scrub_events(self, customer_id: int, limit: int) -> EventsScrubbed:
        customer = self._t.customers.get(customer_id)
        if customer is None or not customer.deleted:
            return EventsScrubbed(0, frozenset())
        mine = sorted(
            pos
            for pos, (event, published) in self._t.outbox.items()
            if event.customer_id == customer_id and published is not None and event.data is not None
        )
        emails: set[str] = set()
        for pos in mine[: max(0, limit)]:
            event, published = self._t.outbox[pos]
            emails |= emails_of(event.data)
            self._t.outbox[pos] = (scrubbed_event(event) or event, published)
        return EventsScrubbed(min(len(mine), max(0, limit)), frozenset(emails))

    async def scrub_customer(self, customer_id: int, emails: frozenset[str], at: datetime) -> int | None:
        customer = self._t.customers.get(customer_id)
        if customer is None or not customer.deleted:
            return 0
        if customer_id in self._t.scrubbed:
            return None  # another pass scrubbed it meanwhile: not counted twice
        found, rows = set(emails), 0
        mappings = [m for (cid, _), m in self._t.mappings.items() if cid == customer_id]
        if not deletion_settled(customer, mappings, customer_id in self._unpublished(), customer_id in self._in_flight()):
            return None
        for mapping in mappings:
            found |= mapping_emails(mapping)
            if (clean_mapping := scrubbed_mapping(mapping)) is not None:
                self._t.mappings[(customer_id, mapping.system)] = msgspec.structs.replace(
                    clean_mapping, version=mapping.version + 1
                )
                rows += 1
        for key, intent in list(self._t.create_intents.items()):
            if key[0] == customer_id and (clean_intent := scrubbed_intent(intent)) is not None:
                found |= emails_of(intent.data)
                self._t.create_intents[key] = clean_intent
                rows += 1
        letters = [d for d in self._t.dead_letters.values() if _is_of(d, customer_id, mappings)]
        external_ids = {m.external_id for m in mappings}
        changed: dict[int, DeadLetter] = {}
        for letter in letters:
            if (clean_letter := scrubbed_letter(letter, external_ids)) is not None:
                found |= clean_letter.emails
                changed[letter.id] = msgspec.structs.replace(letter, payload=clean_letter.payload)
        for letter in letters:
            current = changed.get(letter.id, letter)
            if (error := redacted(current.error, found)) != current.error:
                changed[letter.id] = msgspec.structs.replace(current, error=error or "")
        self._t.dead_letters.update(changed)
        rows += len(changed)
        for record_key, record in list(self._t.sync_records.items()):
            if record.customer_id != customer_id:
                continue
            clean = msgspec.structs.replace(
                record, note=redacted(record.note, found), last_error=redacted(record.last_error, found)
            )
            if clean != record:
                self._t.sync_records[record_key] = clean
                rows += 1
        if customer.data != CustomerData():
            self._t.customers[customer_id] = msgspec.structs.replace(customer, data=CustomerData())
            rows += 1
        self._t.scrubbed[customer_id] = at
        return rows


def _is_of(letter: DeadLetter, customer_id: int, mappings: list[ExternalMapping]) -> bool:
    """The letters a customer's data may be in, as ``adapters.postgres.retention._letters_of``
    picks them: its events (keyed by its id), its external records' changes (keyed
    ``system:external_id``), and refused webhooks of those systems that name one of its external
    ids (``domain.retention.scrubbed_letter`` then checks which record)."""
    if letter.topic == OUTBOUND_TOPIC:
        return letter.key == str(customer_id)
    if letter.topic == INBOUND_TOPIC:
        return letter.key in {f"{m.system}:{m.external_id}" for m in mappings}
    return letter.topic == REJECTED_WEBHOOK_TOPIC and any(
        letter.key == m.system and m.external_id.encode() in letter.payload for m in mappings
    )
