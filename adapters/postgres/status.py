"""The status screen's aggregates on PostgreSQL: one statement each (``application.status``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.postgres.tables import customers, dead_letters, external_mappings, outbox, sync_records
from application.ports import SyncActivity

r = sync_records.c
FAILING = ("retrying", "dead")


class SqlAlchemyStatusRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        o = outbox.c
        # Both from the partial index of unpublished events (ix_outbox_pending).
        row = (await self._c.execute(
            select(func.count(), func.min(o.created_at)).where(o.published_at.is_(None))
        )).one()
        return int(row[0]), row[1]

    async def dead_letters_waiting(self) -> dict[str, int]:
        d = dead_letters.c
        rows = await self._c.execute(select(d.topic, func.count()).where(d.replayed_at.is_(None)).group_by(d.topic))
        return {topic: int(n) for topic, n in rows}

    async def activity(self, system: str, since: datetime) -> SyncActivity:
        mine = r.system == system
        succeeded = r.status == "succeeded"
        row = (await self._c.execute(select(
            func.max(r.updated_at).filter(succeeded, r.direction == "outbound"),
            func.max(r.updated_at).filter(succeeded, r.direction == "inbound"),
            func.count().filter(succeeded, r.updated_at >= since),
            func.count().filter(r.status.in_(FAILING), r.updated_at >= since),
            func.min(r.created_at).filter(r.status.in_(("pending", "retrying"))),
        ).where(mine))).one()
        error = (await self._c.execute(
            select(r.last_error, r.updated_at).where(mine, r.status.in_(FAILING), r.last_error.is_not(None))
            .order_by(r.updated_at.desc()).limit(1)
        )).first()
        return SyncActivity(
            last_outbound=row[0], last_inbound=row[1], settled=int(row[2]), failing=int(row[3]),
            last_error=error[0] if error else None, last_error_at=error[1] if error else None, oldest_unsettled=row[4],
        )

    async def out_of_sync(self, system: str) -> dict[str, int]:
        c, m = customers.c, external_mappings.c
        linked = (await self._c.execute(
            select(
                func.count().filter(m.customer_id.is_(None)),
                func.count().filter(m.broken.is_not(None)),
                func.count().filter(m.broken.is_(None), m.synced_version < c.version),
            )
            .select_from(customers.outerjoin(external_mappings, and_(m.customer_id == c.id, m.system == system)))
            .where(c.deleted.is_(False))
        )).one()
        failing = await self._c.execute(
            select(r.status, func.count(r.customer_id.distinct()))
            .where(r.system == system, r.status.in_(FAILING), r.customer_id.is_not(None))
            .group_by(r.status)
        )
        counts = {"unlinked": int(linked[0]), "broken": int(linked[1]), "behind": int(linked[2]), "retrying": 0, "dead": 0}
        counts.update({status: int(n) for status, n in failing})
        return counts
