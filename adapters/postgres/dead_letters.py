"""The dead-letter store on PostgreSQL (SQLAlchemy Core on the unit of work's connection)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.postgres.repositories import _is_bigint, _row_limit
from adapters.postgres.tables import dead_letters
from application.ports import Envelope
from domain.dead_letters import DeadLetter

d = dead_letters.c


class SqlAlchemyDeadLetterRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def add(self, envelope: Envelope, at: datetime) -> DeadLetter:
        values = {
            "topic": envelope.topic,
            "key": envelope.key,
            "event_id": envelope.event_id,
            "payload": envelope.payload,
            "error": envelope.error or "",
            "created_at": at,
            "replayed_at": None,
        }
        statement = insert(dead_letters).values(values)
        # Upsert on (topic, event_id): the letter keeps its id, so it is the same one in the list.
        upsert = statement.on_conflict_do_update(
            index_elements=[d.topic, d.event_id],
            set_={name: statement.excluded[name] for name in values if name not in ("topic", "event_id")},
        ).returning(dead_letters)
        return _dead_letter((await self._c.execute(upsert)).one())

    async def list(self, limit: int, include_replayed: bool = False) -> list[DeadLetter]:
        query = select(dead_letters).order_by(d.created_at.desc(), d.id.desc()).limit(_row_limit(limit))
        if not include_replayed:
            query = query.where(d.replayed_at.is_(None))
        return [_dead_letter(row) for row in await self._c.execute(query)]

    async def get(self, letter_id: int) -> DeadLetter | None:
        if not _is_bigint(letter_id):
            return None
        row = (await self._c.execute(select(dead_letters).where(d.id == letter_id))).first()
        return None if row is None else _dead_letter(row)

    # ``builtins.list``: inside this class ``list`` names the method above.
    async def unreplayed(self, ids: Sequence[int] | None) -> builtins.list[DeadLetter]:
        # FOR UPDATE: a concurrent replay waits here, then (READ COMMITTED re-checks the WHERE on
        # rows that changed meanwhile) no longer sees letters this one marked replayed.
        query = select(dead_letters).where(d.replayed_at.is_(None)).order_by(d.id).with_for_update()
        if ids is not None:
            wanted = sorted({i for i in ids if _is_bigint(i)})
            if not wanted:
                return []
            query = query.where(d.id.in_(wanted))
        return [_dead_letter(row) for row in await self._c.execute(query)]

    async def mark_replayed(self, letter: DeadLetter, at: datetime) -> None:
        # Conditional on created_at: if the worker recorded a new death of this event since the
        # letter was read, that death wins and the letter stays in the list.
        await self._c.execute(
            update(dead_letters)
            .where(d.id == letter.id, d.created_at == letter.created_at, d.replayed_at.is_(None))
            .values(replayed_at=at)
        )


def _dead_letter(row: Row[Any]) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        topic=row.topic,
        key=row.key,
        event_id=row.event_id,
        payload=bytes(row.payload),
        error=row.error,
        created_at=row.created_at,
        replayed_at=row.replayed_at,
    )
