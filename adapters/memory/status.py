"""The status screen's aggregates over the in-memory tables (``application.status``)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

from application.ports import SyncActivity
from domain.sync import FAILING, UNFINISHED, Direction, SyncStatus

if TYPE_CHECKING:
    from adapters.memory.database import Tables


class InMemoryStatusRepository:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        pending = [event.occurred_at for event, published in self._t.outbox.values() if published is None]
        return len(pending), min(pending, default=None)

    async def dead_letters_waiting(self) -> dict[str, int]:
        return dict(Counter(d.topic for d in self._t.dead_letters.values() if not d.replayed))

    async def activity(self, system: str, since: datetime) -> SyncActivity:
        mine = [rec for rec in self._t.sync_records.values() if rec.system == system]
        done = [rec for rec in mine if rec.status is SyncStatus.SUCCEEDED]
        failing = [rec for rec in mine if rec.status in FAILING and rec.last_error is not None]
        last_error = max(failing, key=lambda rec: rec.updated_at, default=None)
        return SyncActivity(
            last_outbound=max((rec.updated_at for rec in done if rec.direction is Direction.OUTBOUND), default=None),
            last_inbound=max((rec.updated_at for rec in done if rec.direction is Direction.INBOUND), default=None),
            settled=sum(rec.updated_at >= since for rec in done),
            failing=sum(rec.updated_at >= since for rec in mine if rec.status in FAILING),
            last_error=last_error.last_error if last_error else None,
            last_error_at=last_error.updated_at if last_error else None,
            oldest_unsettled=min((rec.created_at for rec in mine if rec.status in UNFINISHED), default=None),
        )

    async def out_of_sync(self, system: str) -> dict[str, int]:
        counts = Counter({"unlinked": 0, "broken": 0, "behind": 0, "retrying": 0, "dead": 0})
        for customer in self._t.customers.values():
            if customer.deleted:
                continue
            mapping = self._t.mappings.get((customer.id, system))
            if mapping is None:
                counts["unlinked"] += 1
            elif mapping.broken is not None:
                counts["broken"] += 1
            elif mapping.synced_version < customer.version:
                counts["behind"] += 1
        # Live customers whose newest record there (per direction) is failing.
        newest: dict[tuple[int, str], tuple[int, SyncStatus]] = {}
        for key, rec in self._t.sync_records.items():
            if rec.system != system or rec.customer_id is None:
                continue
            seq, where = self._t.record_seq[key], (rec.customer_id, rec.direction.value)
            if where not in newest or newest[where][0] < seq:
                newest[where] = (seq, rec.status)
        for status in sorted(FAILING):
            counts[status.value] = len(
                {
                    cid
                    for (cid, _), (_, latest) in newest.items()
                    if latest is status and (c := self._t.customers.get(cid)) is not None and not c.deleted
                }
            )
        return dict(counts)
