"""Retention on PostgreSQL: bounded deletes and a deleted customer's scrub (rules: domain.retention).

Every prune picks its rows through an index (migration 0008) in the order they became old, at most
``limit`` of them, ``FOR UPDATE SKIP LOCKED`` -- two workers pruning at once take different rows,
and a row some other transaction is writing is left for the next pass -- and deletes them by key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    Table,
    any_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.postgres.dead_letters import _dead_letter
from adapters.postgres.repositories import _customer, _is_bigint, _json, _mapping, _row_limit
from adapters.postgres.tables import create_intents, customers, dead_letters, external_mappings, inbox, outbox, sync_records
from application.ports import EventsScrubbed, ScrubCandidate
from domain.customer import CustomerData
from domain.mapping import ExternalMapping
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC, REJECTED_WEBHOOK_TOPIC
from domain.retention import deletion_settled, mapping_emails, redacted, scrubbed_letter, scrubbed_mapping
from domain.sync import FAILING, UNFINISHED

o, i, s, d, c = outbox.c, inbox.c, sync_records.c, dead_letters.c, customers.c
# Spelled as the partial indexes' predicates are (a bound parameter would not prove them).
_SUCCEEDED: ColumnElement[str] = literal_column("'succeeded'")
_NO_DATA = cast(literal('{"data": null}'), JSONB)
_CTID: ColumnElement[Any] = literal_column("ctid")


class SqlAlchemyRetention:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def prune_outbox(self, published_before: datetime, limit: int) -> int:
        chosen = (
            select(o.position)
            .where(o.published_at.is_not(None), o.published_at < published_before)
            .order_by(o.published_at)
            .limit(_row_limit(limit))
            .with_for_update(skip_locked=True)
        )
        return await self._delete(outbox, o.position, chosen)

    async def prune_inbox(self, processed_before: datetime, limit: int) -> int:
        # By ctid: the key is two columns, and a locked row cannot move before the delete.
        chosen = (
            select(_CTID)
            .select_from(inbox)
            .where(i.processed_at < processed_before)
            .order_by(i.processed_at)
            .limit(_row_limit(limit))
            .with_for_update(skip_locked=True)
        )
        return await self._delete(inbox, _CTID, chosen)

    async def prune_sync_records(self, settled_before: datetime, limit: int) -> int:
        r, f, n = sync_records.alias("r"), sync_records.alias("f"), sync_records.alias("n")
        # A link's newest record is its sync_status: deleting it must not make an older failure the
        # newest (both looked up through the customer's index).
        newer = exists().where(*_same_link(n, r), n.c.id > r.c.id)
        failure_before = exists().where(*_same_link(f, r), f.c.id < r.c.id, f.c.status.in_(sorted(FAILING)))
        chosen = (
            select(r.c.id)
            .where(r.c.status == _SUCCEEDED, r.c.updated_at < settled_before, newer | ~failure_before)
            .order_by(r.c.updated_at)
            .limit(_row_limit(limit))
            .with_for_update(of=r, skip_locked=True)
        )
        return await self._delete(sync_records, s.id, chosen)

    async def prune_dead_letters(self, replayed_before: datetime, limit: int) -> int:
        chosen = (
            select(d.id)
            .where(d.replayed_at.is_not(None), d.replayed_at < replayed_before)
            .order_by(d.replayed_at)
            .limit(_row_limit(limit))
            .with_for_update(skip_locked=True)
        )
        return await self._delete(dead_letters, d.id, chosen)

    async def _delete(self, table: Table, key: ColumnElement[Any], chosen: Select[Any]) -> int:
        # ``= ANY(ARRAY(...))``, not ``IN (...)``: the planner may answer IN with a hash join over
        # the whole table; an array makes it look each chosen row up by its key.
        return (await self._c.execute(delete(table).where(key == any_(func.array(chosen.scalar_subquery()))))).rowcount

    async def unscrubbed(self, after_id: int | None, limit: int) -> list[ScrubCandidate]:
        query = select(customers).where(c.deleted, c.scrubbed_at.is_(None)).order_by(c.id).limit(_row_limit(limit))
        if after_id is not None:
            if not _is_bigint(after_id):
                return []
            query = query.where(c.id > after_id)
        found = [_customer(row) for row in await self._c.execute(query)]
        if not found:
            return []
        ids = [customer.id for customer in found]
        mappings: dict[int, list[ExternalMapping]] = {}
        m = external_mappings.c
        for row in await self._c.execute(select(external_mappings).where(m.customer_id.in_(ids)).order_by(m.system.collate("C"))):
            mappings.setdefault(row.customer_id, []).append(_mapping(row))
        waiting, in_flight = await self._unpublished(ids), await self._in_flight(ids)
        return [
            ScrubCandidate(customer, mappings.get(customer.id, []), customer.id in waiting, customer.id in in_flight)
            for customer in found
        ]

    async def _unpublished(self, ids: list[int]) -> set[int]:
        """Of ``ids``, the customers with an event waiting in the outbox (through the pending index:
        as long as the backlog, not the outbox)."""
        return set(
            (
                await self._c.scalars(select(o.customer_id).where(o.published_at.is_(None), o.customer_id.in_(ids)).distinct())
            ).all()
        )

    async def _in_flight(self, ids: list[int]) -> set[int]:
        """Of ``ids``, the customers with a create waiting for its answer (an intent, no link yet in
        its system), or a sync record pending or retrying."""
        ci, r, m = create_intents.c, sync_records.c, external_mappings.c
        linked = exists().where(m.customer_id == ci.customer_id, m.system == ci.system)
        intents = select(ci.customer_id).where(ci.customer_id.in_(ids), ~linked)
        records = select(r.customer_id).where(r.customer_id.in_(ids), r.status.in_(sorted(UNFINISHED)))
        return set((await self._c.scalars(intents.union(records))).all())

    async def scrub_events(self, customer_id: int, limit: int) -> EventsScrubbed:
        if not _is_bigint(customer_id):
            return EventsScrubbed(0, frozenset())
        deleted = exists().where(c.id == customer_id, c.deleted)
        chosen = (
            select(o.position, o.payload["data"]["email"].astext.label("email"))
            .where(
                o.customer_id == customer_id,
                o.published_at.is_not(None),
                text("jsonb_typeof(outbox.payload -> 'data') = 'object'"),
                deleted,
            )
            .order_by(o.position)
            .limit(_row_limit(limit))
            .with_for_update(of=outbox)
            .cte("chosen")
        )
        # domain.retention.scrubbed_event, in place: ``data`` becomes null, the rest of the event stays.
        statement = (
            update(outbox)
            .where(o.position == chosen.c.position)
            .values(payload=o.payload.op("||")(_NO_DATA))
            .returning(chosen.c.email)
        )
        emails = list((await self._c.scalars(statement)).all())
        return EventsScrubbed(len(emails), frozenset(e for e in emails if e))

    async def scrub_customer(self, customer_id: int, emails: frozenset[str], at: datetime) -> int | None:
        if not _is_bigint(customer_id):
            return 0
        row = (await self._c.execute(select(customers).where(c.id == customer_id).with_for_update())).first()
        if row is None or not row.deleted:
            return 0
        if row.scrubbed_at is not None:
            return None  # another worker's pass scrubbed it meanwhile: not counted twice
        found = set(emails)
        mappings = [
            _mapping(r)
            for r in await self._c.execute(
                select(external_mappings).where(external_mappings.c.customer_id == customer_id).with_for_update()
            )
        ]
        tombstone = _customer(row)
        unpublished, in_flight = await self._unpublished([customer_id]), await self._in_flight([customer_id])
        if not deletion_settled(tombstone, mappings, bool(unpublished), bool(in_flight)):
            return None
        rows = await self._scrub_mappings(mappings, found)
        rows += await self._scrub_intents(customer_id, found)
        rows += await self._scrub_letters(customer_id, mappings, found)
        rows += await self._redact_history(customer_id, found)
        await self._c.execute(update(customers).where(c.id == customer_id).values(name=None, email=None, scrubbed_at=at))
        return rows + (tombstone.data != CustomerData())

    async def _scrub_mappings(self, mappings: list[ExternalMapping], found: set[str]) -> int:
        m, rows = external_mappings.c, 0
        for mapping in mappings:
            found |= mapping_emails(mapping)
            if scrubbed_mapping(mapping) is None:
                continue
            # The version moves like any write of the link: a worker's write from an earlier read
            # fails (ConcurrentUpdate) and is made again from this one, never putting values back.
            await self._c.execute(
                update(external_mappings)
                .where(m.customer_id == mapping.customer_id, m.system == mapping.system)
                .values(
                    synced_name=None,
                    synced_email=None,
                    external_writes=_json({}),
                    sent=_json({}),
                    version=m.version + 1,
                )
            )
            rows += 1
        return rows

    async def _scrub_intents(self, customer_id: int, found: set[str]) -> int:
        ci = create_intents.c
        holding = (ci.customer_id == customer_id, or_(ci.name.is_not(None), ci.email.is_not(None)))
        found |= {e for e in (await self._c.scalars(select(ci.email).where(*holding).with_for_update())).all() if e}
        return (await self._c.execute(update(create_intents).where(*holding).values(name=None, email=None))).rowcount

    async def _scrub_letters(self, customer_id: int, mappings: Sequence[ExternalMapping], found: set[str]) -> int:
        query = select(dead_letters).where(_letters_of(customer_id, mappings)).with_for_update()
        letters = [_dead_letter(row) for row in await self._c.execute(query)]
        external_ids = {mapping.external_id for mapping in mappings}
        payloads: dict[int, bytes] = {}
        for letter in letters:
            if (scrubbed := scrubbed_letter(letter, external_ids)) is not None:
                found |= scrubbed.emails
                payloads[letter.id] = scrubbed.payload
        changed = 0
        for letter in letters:
            error = redacted(letter.error, found) or ""
            if letter.id in payloads or error != letter.error:
                await self._c.execute(
                    update(dead_letters)
                    .where(d.id == letter.id)
                    .values(payload=payloads.get(letter.id, letter.payload), error=error)
                )
                changed += 1
        return changed

    async def _redact_history(self, customer_id: int, found: set[str]) -> int:
        if not found:
            return 0
        query = (
            select(s.id, s.note, s.last_error)
            .where(s.customer_id == customer_id, or_(s.note.is_not(None), s.last_error.is_not(None)))
            .with_for_update()
        )
        changed = 0
        for record in (await self._c.execute(query)).all():
            note, error = redacted(record.note, found), redacted(record.last_error, found)
            if (note, error) != (record.note, record.last_error):
                await self._c.execute(update(sync_records).where(s.id == record.id).values(note=note, last_error=error))
                changed += 1
        return changed


def _same_link(other: FromClause[Any], record: FromClause[Any]) -> tuple[ColumnElement[bool], ...]:
    return (
        other.c.customer_id == record.c.customer_id,
        other.c.system == record.c.system,
        other.c.direction == record.c.direction,
    )


def _letters_of(customer_id: int, mappings: Sequence[ExternalMapping]) -> ColumnElement[bool]:
    """The letters a customer's data may be in: its events (keyed by its id), its external records'
    changes (keyed ``system:external_id``), and refused webhooks of those systems that name one of
    its external ids (kept under the system's name; ``scrubbed_letter`` checks which record)."""
    clauses = [(d.topic == OUTBOUND_TOPIC) & (d.key == str(customer_id))]
    if mappings:
        clauses.append((d.topic == INBOUND_TOPIC) & d.key.in_([f"{m.system}:{m.external_id}" for m in mappings]))
        named = [
            text(f"position(:needle_{n} IN dead_letters.payload) > 0").bindparams(
                bindparam(f"needle_{n}", m.external_id.encode())
            )
            for n, m in enumerate(mappings)
        ]
        clauses.append((d.topic == REJECTED_WEBHOOK_TOPIC) & d.key.in_(sorted({m.system for m in mappings})) & or_(*named))
    return or_(*clauses)
