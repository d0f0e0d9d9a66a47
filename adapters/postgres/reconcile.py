"""Reconcile runs, findings and what each run has seen, on PostgreSQL.

The questions a run asks of the whole catalog ("links whose record the list did not show",
"customers linked to nothing") are anti-joins here, so a mostly-in-sync catalog costs a few index
scans, not a read of every row in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Row, and_, exists, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.postgres.repositories import _customer, _mapping, _row_limit
from adapters.postgres.tables import (
    create_intents,
    customers,
    external_mappings,
    reconcile_findings,
    reconcile_runs,
    reconcile_seen,
)
from application.ports import CREATE_IN_FLIGHT, SeenExternal
from domain.customer import Customer
from domain.drift import Finding, FindingKind, Fix, FixStatus, ReconcileRun, RunStatus, email_key
from domain.mapping import ExternalMapping
from domain.messages import ExternalCustomer

_RUN_FIELDS = (
    "system",
    "status",
    "dry_run",
    "match_by",
    "trigger",
    "created_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "owner",
    "phase",
    "checkpoint",
    "counts",
    "error",
)
_ACTIVE = tuple(status.value for status in RunStatus if status.active)

# One round trip per page of the external list: the page goes in as three arrays, the links are
# marked seen, and only whether each linked record is plainly in sync comes back.
_LINKED_IN_PAGE = text("""
    WITH page AS (
        SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:names AS text[]), CAST(:emails AS text[])) AS p(external_id, name, email)
    ), linked AS (
        SELECT p.external_id,
               c.deleted OR m.broken IS NOT NULL OR c.name IS DISTINCT FROM p.name OR c.email IS DISTINCT FROM p.email AS differs
        FROM page p
        JOIN external_mappings m ON m.system = :system AND m.external_id = p.external_id
        JOIN customers c ON c.id = m.customer_id
    ), seen AS (
        INSERT INTO reconcile_seen (run_id, external_id, unlinked)
        SELECT :run_id, external_id, false FROM linked
        ON CONFLICT DO NOTHING
    )
    SELECT external_id, differs FROM linked
""")


class SqlAlchemyReconcileRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    # -- runs ---------------------------------------------------------------------------------
    async def add_run(self, run: ReconcileRun) -> tuple[ReconcileRun, bool]:
        values = _run_values(run)
        # ix_reconcile_runs_active: one queued-or-running run per system; a second one is not inserted.
        row = (
            await self._c.execute(insert(reconcile_runs).values(values).on_conflict_do_nothing().returning(reconcile_runs))
        ).first()
        if row is not None:
            return _run(row), True
        active = await self.active_run(run.system)
        if active is None:  # the active run finished between the two statements
            return await self.add_run(run)
        return active, False

    async def get_run(self, run_id: int) -> ReconcileRun | None:
        row = (await self._c.execute(select(reconcile_runs).where(reconcile_runs.c.id == run_id))).first()
        return None if row is None else _run(row)

    async def runs(self, system: str | None, limit: int, *, dry_run: bool | None = None) -> list[ReconcileRun]:
        query = select(reconcile_runs).order_by(reconcile_runs.c.id.desc()).limit(_row_limit(limit))
        if system is not None:
            query = query.where(reconcile_runs.c.system == system)
        if dry_run is not None:
            query = query.where(reconcile_runs.c.dry_run.is_(dry_run))
        return [_run(row) for row in await self._c.execute(query)]

    async def active_run(self, system: str) -> ReconcileRun | None:
        r = reconcile_runs.c
        row = (await self._c.execute(select(reconcile_runs).where(r.system == system, r.status.in_(_ACTIVE)))).first()
        return None if row is None else _run(row)

    async def claim_run(self, run_id: int | None, owner: str, now: datetime, stale_before: datetime) -> ReconcileRun | None:
        r = reconcile_runs.c
        claimable = or_(
            r.status == RunStatus.QUEUED.value,
            and_(r.status == RunStatus.RUNNING.value, or_(r.heartbeat_at.is_(None), r.heartbeat_at < stale_before)),
        )
        candidate = select(r.id).where(claimable).order_by(r.id).limit(1).with_for_update(skip_locked=True)
        if run_id is not None:
            candidate = candidate.where(r.id == run_id)
        statement = (
            update(reconcile_runs)
            .where(r.id == candidate.scalar_subquery(), claimable)
            .values(status=RunStatus.RUNNING.value, owner=owner, heartbeat_at=now, started_at=func.coalesce(r.started_at, now))
            .returning(reconcile_runs)
        )
        row = (await self._c.execute(statement)).first()
        return None if row is None else _run(row)

    async def save_run(self, run: ReconcileRun) -> bool:
        r = reconcile_runs.c
        values = _run_values(run)
        statement = (
            update(reconcile_runs).where(r.id == run.id, r.owner == run.owner, r.status == RunStatus.RUNNING.value).values(values)
        )
        return (await self._c.execute(statement)).rowcount == 1

    async def heartbeat(self, run_id: int, owner: str, at: datetime) -> bool:
        r = reconcile_runs.c
        statement = (
            update(reconcile_runs)
            .where(r.id == run_id, r.owner == owner, r.status == RunStatus.RUNNING.value)
            .values(heartbeat_at=at)
        )
        return (await self._c.execute(statement)).rowcount == 1

    # -- findings -------------------------------------------------------------------------------
    async def add_findings(self, findings: Sequence[Finding]) -> list[Finding]:
        if not findings:
            return []
        unique: dict[str, Finding] = {}
        for finding in findings:
            unique.setdefault(finding.subject, finding)  # one per subject: the first
        rows = [
            {
                "run_id": f.run_id,
                "subject": f.subject,
                "kind": f.kind.value,
                "customer_id": f.customer_id,
                "external_id": f.external_id,
                "fields": list(f.fields),
                "detail": f.detail,
                "fix": f.fix.value,
                "fix_status": f.fix_status.value,
                "at": f.at,
            }
            for f in unique.values()
        ]
        statement = (
            insert(reconcile_findings)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[reconcile_findings.c.run_id, reconcile_findings.c.subject])
            .returning(reconcile_findings.c.id, reconcile_findings.c.subject)
        )
        kept = {row.subject: row.id for row in await self._c.execute(statement)}
        return [msgspec.structs.replace(f, seq=kept[f.subject]) for f in unique.values() if f.subject in kept]

    async def findings(self, run_id: int, *, after: int | None, limit: int, kinds: Sequence[str] | None = None) -> list[Finding]:
        f = reconcile_findings.c
        query = select(reconcile_findings).where(f.run_id == run_id).order_by(f.id).limit(_row_limit(limit))
        if after is not None:
            query = query.where(f.id > after)
        if kinds is not None:
            query = query.where(f.kind.in_(list(kinds)))
        return [_finding(row) for row in await self._c.execute(query)]

    async def planned(self, run_id: int, limit: int) -> list[Finding]:
        f = reconcile_findings.c
        query = (
            select(reconcile_findings)
            .where(f.run_id == run_id, f.fix_status == "planned")
            .order_by(f.id)
            .limit(_row_limit(limit))
        )
        return [_finding(row) for row in await self._c.execute(query)]

    async def set_fix_status(self, run_id: int, subject: str, status: str, detail: str | None = None) -> None:
        f = reconcile_findings.c
        values: dict[str, object] = {"fix_status": str(status)}
        if detail is not None:
            values["detail"] = func.concat_ws("; ", f.detail, detail)
        await self._c.execute(update(reconcile_findings).where(f.run_id == run_id, f.subject == subject).values(values))

    async def fix_counts(self, run_id: int) -> dict[str, int]:
        f = reconcile_findings.c
        query = select(f.fix_status, func.count()).where(f.run_id == run_id).group_by(f.fix_status)
        return dict((await self._c.execute(query)).all())

    async def kind_counts(self, run_id: int) -> dict[str, int]:
        f = reconcile_findings.c
        query = select(f.kind, func.count()).where(f.run_id == run_id).group_by(f.kind)
        return dict((await self._c.execute(query)).all())

    # -- what a run has seen ----------------------------------------------------------------------
    async def mark_seen(self, run_id: int, seen: Sequence[SeenExternal]) -> None:
        if not seen:
            return
        rows = [
            {
                "run_id": run_id,
                "external_id": s.external_id,
                "unlinked": s.record is not None,
                "email_key": email_key(s.record.data.email) if s.record is not None else None,
                "record": msgspec.to_builtins(s.record) if s.record is not None else None,
            }
            for s in {s.external_id: s for s in seen}.values()
        ]
        # Executemany, not one multi-VALUES statement: that one is compiled anew for every page
        # (a third of a 100-record page's time); this one is compiled once and cached.
        await self._c.execute(insert(reconcile_seen).on_conflict_do_nothing(), rows)

    async def seen_record(self, run_id: int, external_id: str) -> ExternalCustomer | None:
        s = reconcile_seen.c
        raw = await self._c.scalar(select(s.record).where(s.run_id == run_id, s.external_id == external_id))
        return None if raw is None else msgspec.convert(raw, ExternalCustomer)

    async def unseen_links(
        self, run_id: int, system: str, linked_before: datetime, after_customer_id: int | None, limit: int
    ) -> list[ExternalMapping]:
        if after_customer_id is None:
            # Every run deletes what it saw when it ends, so between runs autovacuum records this
            # table as empty; planned on that, the anti-join below becomes a nested loop comparing
            # every link with every seen row (quadratic: 4 s at 10,000 customers, minutes at
            # 100,000). Statistics taken now make it a hash anti-join. SKIP_LOCKED: never wait.
            await self._c.execute(text("ANALYZE (SKIP_LOCKED) reconcile_seen"))
        m, s = external_mappings.c, reconcile_seen.c
        seen = exists().where(s.run_id == run_id, s.external_id == m.external_id)
        query = (
            select(external_mappings)
            .where(m.system == system, m.synced_at < linked_before, ~seen)
            .order_by(m.customer_id)
            .limit(_row_limit(limit))
        )
        if after_customer_id is not None:
            query = query.where(m.customer_id > after_customer_id)
        return [_mapping(row) for row in await self._c.execute(query)]

    async def unlinked_customers(self, system: str, created_before: datetime, after_id: int | None, limit: int) -> list[Customer]:
        c, m = customers.c, external_mappings.c
        linked = exists().where(m.customer_id == c.id, m.system == system)
        query = (
            select(customers)
            .where(c.deleted.is_(False), c.created_at < created_before, ~linked)
            .order_by(c.id)
            .limit(_row_limit(limit))
        )
        if after_id is not None:
            query = query.where(c.id > after_id)
        return [_customer(row) for row in await self._c.execute(query)]

    async def linked_in_page(self, run_id: int, system: str, records: Sequence[ExternalCustomer]) -> tuple[set[str], set[str]]:
        if not records:
            return set(), set()
        rows = await self._c.execute(
            _LINKED_IN_PAGE,
            {
                "run_id": run_id,
                "system": system,
                "ids": [r.external_id for r in records],
                "names": [r.data.name for r in records],
                "emails": [r.data.email for r in records],
            },
        )
        linked, differing = set(), set()
        for external_id, differs in rows:
            linked.add(external_id)
            if differs:
                differing.add(external_id)
        return linked, differing

    async def held_back(self, run_id: int, system: str, customer_ids: Sequence[int]) -> dict[int, str]:
        if not customer_ids:
            return {}
        f, i = reconcile_findings.c, create_intents.c
        held: dict[int, str] = {}
        claims = (
            select(f.customer_id, f.external_id)
            .where(
                f.run_id == run_id,
                f.subject.startswith("external:", autoescape=True),
                f.customer_id.in_(list(customer_ids)),
            )
            .order_by(f.id)
        )
        for row in await self._c.execute(claims):
            held.setdefault(row.customer_id, f"claimed by {row.external_id}")
        in_flight = select(i.customer_id).where(i.system == system, i.customer_id.in_(list(customer_ids)))
        for row in await self._c.execute(in_flight):
            held[row.customer_id] = CREATE_IN_FLIGHT
        return held

    async def ambiguous_emails(self, system: str, email_keys: Sequence[str]) -> set[str]:
        if not email_keys:
            return set()
        r, f = reconcile_runs.c, reconcile_findings.c
        latest = (
            select(r.id)
            .where(r.system == system, r.status == RunStatus.DONE.value, r.dry_run.is_(False))
            .order_by(r.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        subjects = [f"email:{k}" for k in email_keys]
        query = select(f.subject).where(f.run_id == latest, f.subject.in_(subjects), f.kind == FindingKind.AMBIGUOUS.value)
        return {row.subject.removeprefix("email:") for row in await self._c.execute(query)}

    async def unlinked_customer_ids(self, system: str, email_keys: Sequence[str]) -> dict[str, list[int]]:
        if not email_keys:
            return {}
        c, m = customers.c, external_mappings.c
        linked = exists().where(m.customer_id == c.id, m.system == system)
        key = func.lower(c.email)  # the indexed expression (ix_customers_lower_email)
        query = select(c.id, key.label("key")).where(key.in_(list(email_keys)), c.deleted.is_(False), ~linked).order_by(c.id)
        found: dict[str, list[int]] = {}
        for row in await self._c.execute(query):
            found.setdefault(row.key, []).append(row.id)
        return found

    async def unlinked_seen(self, run_id: int, email_keys: Sequence[str]) -> dict[str, list[ExternalCustomer]]:
        if not email_keys:
            return {}
        s = reconcile_seen.c
        query = (
            select(s.email_key, s.record)
            .where(s.run_id == run_id, s.unlinked, s.email_key.in_(list(email_keys)))
            .order_by(s.external_id.collate("C"))
        )
        found: dict[str, list[ExternalCustomer]] = {}
        for row in await self._c.execute(query):
            found.setdefault(row.email_key, []).append(msgspec.convert(row.record, ExternalCustomer))
        return found

    async def undecided(self, run_id: int, after_external_id: str | None, limit: int) -> list[ExternalCustomer]:
        s = reconcile_seen.c
        query = (
            select(s.record)
            .where(s.run_id == run_id, s.unlinked, s.decided.is_(False))
            .order_by(s.external_id.collate("C"))
            .limit(_row_limit(limit))
        )
        if after_external_id is not None:
            query = query.where(s.external_id.collate("C") > after_external_id)
        return [msgspec.convert(raw, ExternalCustomer) for raw in await self._c.scalars(query)]

    async def decide(self, run_id: int, external_ids: Sequence[str]) -> None:
        if external_ids:
            s = reconcile_seen.c
            await self._c.execute(
                update(reconcile_seen).where(s.run_id == run_id, s.external_id.in_(list(set(external_ids)))).values(decided=True)
            )

    async def forget_seen(self, run_id: int) -> None:
        await self._c.execute(reconcile_seen.delete().where(reconcile_seen.c.run_id == run_id))


def _run_values(run: ReconcileRun) -> dict[str, object]:
    values = {name: getattr(run, name) for name in _RUN_FIELDS}
    values.update(status=run.status.value, phase=run.phase.value, match_by=run.match_by.value if run.match_by else None)
    return values


def _run(row: Row[Any]) -> ReconcileRun:
    return msgspec.convert({"id": row.id, **{name: getattr(row, name) for name in _RUN_FIELDS}}, ReconcileRun)


def _finding(row: Row[Any]) -> Finding:
    return Finding(
        run_id=row.run_id,
        subject=row.subject,
        kind=FindingKind(row.kind),
        fix=Fix(row.fix),
        fix_status=FixStatus(row.fix_status),
        at=row.at,
        customer_id=row.customer_id,
        external_id=row.external_id,
        fields=tuple(row.fields),
        detail=row.detail,
        seq=row.id,
    )
