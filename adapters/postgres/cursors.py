"""Polling cursors on PostgreSQL: where a poller of an external change log got to, and its lease."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.postgres.tables import sync_cursors
from application.ports import Cursor


class SqlAlchemyCursorRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def get(self, system: str, name: str) -> Cursor | None:
        c = sync_cursors.c
        row = (await self._c.execute(select(sync_cursors).where(c.system == system, c.name == name))).first()
        return None if row is None else _cursor(row)

    async def lease(self, system: str, name: str, owner: str, until: datetime, now: datetime) -> Cursor | None:
        c = sync_cursors.c
        # Two pollers making the cursor at once: the second insert waits for the first's commit and
        # does nothing; its UPDATE then re-reads the committed row (READ COMMITTED) and finds the
        # lease taken. So exactly one of them gets it.
        await self._c.execute(
            insert(sync_cursors).values(system=system, name=name, position=None, updated_at=now).on_conflict_do_nothing()
        )
        taken = await self._c.execute(
            update(sync_cursors)
            .where(c.system == system, c.name == name)
            .where(or_(c.leased_by.is_(None), c.leased_by == owner, c.leased_until.is_(None), c.leased_until <= now))
            .values(leased_by=owner, leased_until=until)
            .returning(*sync_cursors.c)
        )
        row = taken.first()
        return None if row is None else _cursor(row)

    async def advance(self, system: str, name: str, owner: str, position: str, at: datetime) -> bool:
        c = sync_cursors.c
        result = await self._c.execute(
            update(sync_cursors)
            .where(c.system == system, c.name == name, c.leased_by == owner)
            .values(position=position, updated_at=at)
        )
        return result.rowcount == 1

    async def release(self, system: str, name: str, owner: str) -> None:
        c = sync_cursors.c
        await self._c.execute(
            update(sync_cursors)
            .where(c.system == system, c.name == name, c.leased_by == owner)
            .values(leased_by=None, leased_until=None)
        )


def _cursor(row: Row[Any]) -> Cursor:
    return Cursor(
        system=row.system,
        name=row.name,
        position=row.position,
        updated_at=row.updated_at,
        leased_by=row.leased_by,
        leased_until=row.leased_until,
    )
