"""The status screen's aggregates on PostgreSQL (``application.status``), each through an index:
succeeded records by time (``ix_sync_records_succeeded_updated_at``), the unsettled ones by system
and status (``ix_sync_records_unsettled``), the unpublished outbox (``ix_outbox_pending``). The
one walk over the catalog is ``out_of_sync``'s join of live customers with their links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, and_, exists, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from adapters.postgres.tables import customers, dead_letters, external_mappings, outbox, sync_records
from application.ports import SyncActivity
from domain import sync as domain_sync
from domain.sync import SyncStatus

r = sync_records.c


# Spelled as the partial indexes' predicates are (a bound parameter would not prove them), as
# adapters.postgres.retention does.
def _spelled(statuses: frozenset[SyncStatus]) -> list[ColumnElement[str]]:
    return [literal_column(f"'{s.value}'") for s in sorted(statuses)]


SUCCEEDED: ColumnElement[str] = literal_column(f"'{SyncStatus.SUCCEEDED.value}'")
FAILING = _spelled(domain_sync.FAILING)
UNSETTLED = _spelled(domain_sync.UNFINISHED)


class SqlAlchemyStatusRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        o = outbox.c
        row = (await self._c.execute(select(func.count(), func.min(o.created_at)).where(o.published_at.is_(None)))).one()
        return int(row[0]), row[1]

    async def dead_letters_waiting(self) -> dict[str, int]:
        d = dead_letters.c
        rows = await self._c.execute(select(d.topic, func.count()).where(d.replayed_at.is_(None)).group_by(d.topic))
        return {topic: int(n) for topic, n in rows}

    async def activity(self, system: str, since: datetime) -> SyncActivity:
        def last(direction: str) -> ScalarSelect[Any]:  # the newest succeeded record, read backwards along its index
            return (
                select(r.updated_at)
                .where(r.status == SUCCEEDED, r.system == system, r.direction == direction)
                .order_by(r.updated_at.desc())
                .limit(1)
                .scalar_subquery()
            )

        row = (
            await self._c.execute(
                select(
                    last("outbound"),
                    last("inbound"),
                    select(func.count())
                    .where(r.status == SUCCEEDED, r.updated_at >= since, r.system == system)
                    .scalar_subquery(),
                    select(func.count())
                    .where(r.status.in_(FAILING), r.system == system, r.updated_at >= since)
                    .scalar_subquery(),
                    select(func.min(r.created_at)).where(r.status.in_(UNSETTLED), r.system == system).scalar_subquery(),
                )
            )
        ).one()
        error = (
            await self._c.execute(
                select(r.last_error, r.updated_at)
                .where(r.system == system, r.status.in_(FAILING), r.last_error.is_not(None))
                .order_by(r.updated_at.desc())
                .limit(1)
            )
        ).first()
        return SyncActivity(
            last_outbound=row[0],
            last_inbound=row[1],
            settled=int(row[2]),
            failing=int(row[3]),
            last_error=error[0] if error else None,
            last_error_at=error[1] if error else None,
            oldest_unsettled=row[4],
        )

    async def out_of_sync(self, system: str) -> dict[str, int]:
        c, m = customers.c, external_mappings.c
        linked = (
            await self._c.execute(
                select(
                    func.count().filter(m.customer_id.is_(None)),
                    func.count().filter(m.broken.is_not(None)),
                    func.count().filter(m.broken.is_(None), m.synced_version < c.version),
                )
                .select_from(customers.outerjoin(external_mappings, and_(m.customer_id == c.id, m.system == system)))
                .where(c.deleted.is_(False))
            )
        ).one()
        # Live customers whose newest record there (per direction) is failing: a failure a later
        # change has since carried past no longer counts.
        newer = aliased(sync_records)
        superseded = exists().where(
            newer.c.customer_id == r.customer_id,
            newer.c.system == r.system,
            newer.c.direction == r.direction,
            newer.c.id > r.id,
        )
        live = exists().where(c.id == r.customer_id, c.deleted.is_(False))
        failing = await self._c.execute(
            select(r.status, func.count(r.customer_id.distinct()))
            .where(r.system == system, r.status.in_(FAILING), live, ~superseded)
            .group_by(r.status)
        )
        counts = {"unlinked": int(linked[0]), "broken": int(linked[1]), "behind": int(linked[2]), "retrying": 0, "dead": 0}
        counts.update({status: int(n) for status, n in failing})
        return counts
