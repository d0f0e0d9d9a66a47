"""Reconcile runs, findings and what each run has seen, in the in-memory database (``Tables``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from application.ports import CREATE_IN_FLIGHT, SeenExternal
from domain.customer import Customer
from domain.drift import Finding, FindingKind, ReconcileRun, RunStatus, email_key
from domain.mapping import ExternalMapping
from domain.messages import ExternalCustomer

if TYPE_CHECKING:
    from adapters.memory.database import Tables


class InMemoryReconcileRepository:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def add_run(self, run: ReconcileRun) -> tuple[ReconcileRun, bool]:
        active = await self.active_run(run.system)
        if active is not None:
            return active, False
        run = msgspec.structs.replace(run, id=self._t.next_run_id)
        self._t.next_run_id += 1
        self._t.reconcile_runs[run.id] = run
        return run, True

    async def get_run(self, run_id: int) -> ReconcileRun | None:
        return self._t.reconcile_runs.get(run_id)

    async def runs(self, system: str | None, limit: int, *, dry_run: bool | None = None) -> list[ReconcileRun]:
        runs = [
            r
            for r in self._t.reconcile_runs.values()
            if (system is None or r.system == system) and (dry_run is None or r.dry_run == dry_run)
        ]
        return sorted(runs, key=lambda r: -r.id)[: max(0, limit)]

    async def active_run(self, system: str) -> ReconcileRun | None:
        return next((r for r in self._t.reconcile_runs.values() if r.system == system and r.status.active), None)

    async def claim_run(self, run_id: int | None, owner: str, now: datetime, stale_before: datetime) -> ReconcileRun | None:
        for run in sorted(self._t.reconcile_runs.values(), key=lambda r: r.id):
            if run_id is not None and run.id != run_id:
                continue
            stale = run.status is RunStatus.RUNNING and (run.heartbeat_at is None or run.heartbeat_at < stale_before)
            if run.status is RunStatus.QUEUED or stale:
                claimed = msgspec.structs.replace(
                    run,
                    status=RunStatus.RUNNING,
                    owner=owner,
                    heartbeat_at=now,
                    started_at=run.started_at or now,
                )
                self._t.reconcile_runs[run.id] = claimed
                return claimed
        return None

    async def save_run(self, run: ReconcileRun) -> bool:
        stored = self._t.reconcile_runs.get(run.id)
        if stored is None or stored.status is not RunStatus.RUNNING or stored.owner != run.owner:
            return False
        self._t.reconcile_runs[run.id] = run
        return True

    async def heartbeat(self, run_id: int, owner: str, at: datetime) -> bool:
        stored = self._t.reconcile_runs.get(run_id)
        if stored is None or stored.status is not RunStatus.RUNNING or stored.owner != owner:
            return False
        self._t.reconcile_runs[run_id] = msgspec.structs.replace(stored, heartbeat_at=at)
        return True

    async def add_findings(self, findings: Sequence[Finding]) -> list[Finding]:
        added: list[Finding] = []
        for finding in findings:
            key = (finding.run_id, finding.subject)
            if key in self._t.findings:
                continue
            finding = msgspec.structs.replace(finding, seq=self._t.next_finding_seq)
            self._t.next_finding_seq += 1
            self._t.findings[key] = finding
            added.append(finding)
        return added

    async def findings(self, run_id: int, *, after: int | None, limit: int, kinds: Sequence[str] | None = None) -> list[Finding]:
        rows = sorted((f for (r, _), f in self._t.findings.items() if r == run_id), key=lambda f: f.seq)
        rows = [f for f in rows if (after is None or f.seq > after) and (kinds is None or f.kind in kinds)]
        return rows[: max(0, limit)]

    async def planned(self, run_id: int, limit: int) -> list[Finding]:
        rows = sorted(
            (f for (r, _), f in self._t.findings.items() if r == run_id and f.fix_status == "planned"), key=lambda f: f.seq
        )
        return rows[: max(0, limit)]

    async def set_fix_status(self, run_id: int, subject: str, status: str, detail: str | None = None) -> None:
        finding = self._t.findings.get((run_id, subject))
        if finding is not None:
            changes: dict[str, object] = {"fix_status": status}
            if detail is not None:
                changes["detail"] = f"{finding.detail}; {detail}" if finding.detail else detail
            self._t.findings[(run_id, subject)] = msgspec.structs.replace(finding, **changes)

    async def fix_counts(self, run_id: int) -> dict[str, int]:
        return dict(Counter(f.fix_status.value for (r, _), f in self._t.findings.items() if r == run_id))

    async def kind_counts(self, run_id: int) -> dict[str, int]:
        return dict(Counter(f.kind.value for (r, _), f in self._t.findings.items() if r == run_id))

    async def mark_seen(self, run_id: int, seen: Sequence[SeenExternal]) -> None:
        for s in seen:
            self._t.reconcile_seen.setdefault((run_id, s.external_id), (s.record, False))

    async def seen_record(self, run_id: int, external_id: str) -> ExternalCustomer | None:
        entry = self._t.reconcile_seen.get((run_id, external_id))
        return entry[0] if entry is not None else None

    async def unseen_links(
        self, run_id: int, system: str, linked_before: datetime, after_customer_id: int | None, limit: int
    ) -> list[ExternalMapping]:
        rows = sorted(
            (
                m
                for m in self._t.mappings.values()
                if m.system == system
                and m.synced_at < linked_before
                and (run_id, m.external_id) not in self._t.reconcile_seen
                and (after_customer_id is None or m.customer_id > after_customer_id)
            ),
            key=lambda m: m.customer_id,
        )
        return rows[: max(0, limit)]

    async def unlinked_customers(self, system: str, created_before: datetime, after_id: int | None, limit: int) -> list[Customer]:
        linked = {cid for (cid, s) in self._t.mappings if s == system}
        rows = [
            c
            for cid, c in sorted(self._t.customers.items())
            if not c.deleted and cid not in linked and c.created_at < created_before and (after_id is None or cid > after_id)
        ]
        return rows[: max(0, limit)]

    async def linked_in_page(self, run_id: int, system: str, records: Sequence[ExternalCustomer]) -> tuple[set[str], set[str]]:
        links = {m.external_id: m for (_, s), m in self._t.mappings.items() if s == system}
        linked, differing = set(), set()
        for record in records:
            mapping = links.get(record.external_id)
            customer = self._t.customers.get(mapping.customer_id) if mapping is not None else None
            if mapping is None or customer is None:
                continue
            linked.add(record.external_id)
            if customer.deleted or mapping.broken is not None or customer.data != record.data:
                differing.add(record.external_id)
        await self.mark_seen(run_id, [SeenExternal(external_id) for external_id in sorted(linked)])
        return linked, differing

    async def held_back(self, run_id: int, system: str, customer_ids: Sequence[int]) -> dict[int, str]:
        wanted = set(customer_ids)
        held: dict[int, str] = {}
        for f in sorted(self._t.findings.values(), key=lambda f: f.seq):
            if f.run_id == run_id and f.subject.startswith("external:") and f.customer_id in wanted:
                held.setdefault(f.customer_id, f"claimed by {f.external_id}")
        held.update({cid: CREATE_IN_FLIGHT for (cid, s) in self._t.create_intents if s == system and cid in wanted})
        return held

    async def ambiguous_emails(self, system: str, email_keys: Sequence[str]) -> set[str]:
        done = [
            r.id for r in self._t.reconcile_runs.values() if r.system == system and r.status is RunStatus.DONE and not r.dry_run
        ]
        if not done:
            return set()
        latest = max(done)
        return {
            k
            for k in email_keys
            if (f := self._t.findings.get((latest, f"email:{k}"))) is not None and f.kind is FindingKind.AMBIGUOUS
        }

    async def unlinked_customer_ids(self, system: str, email_keys: Sequence[str]) -> dict[str, list[int]]:
        wanted = set(email_keys)
        linked = {cid for (cid, s) in self._t.mappings if s == system}
        found: dict[str, list[int]] = {}
        for cid, c in sorted(self._t.customers.items()):
            key = email_key(c.email)
            if key in wanted and not c.deleted and cid not in linked:
                found.setdefault(key, []).append(cid)
        return found

    async def unlinked_seen(self, run_id: int, email_keys: Sequence[str]) -> dict[str, list[ExternalCustomer]]:
        wanted = set(email_keys)
        found: dict[str, list[ExternalCustomer]] = {}
        for (r, _external_id), (record, _) in sorted(self._t.reconcile_seen.items()):
            if r != run_id or record is None:
                continue
            key = email_key(record.data.email)
            if key in wanted:
                found.setdefault(key, []).append(record)
        return found

    async def undecided(self, run_id: int, after_external_id: str | None, limit: int) -> list[ExternalCustomer]:
        rows = [
            record
            for (r, external_id), (record, decided) in sorted(self._t.reconcile_seen.items())
            if r == run_id
            and record is not None
            and not decided
            and (after_external_id is None or external_id > after_external_id)
        ]
        return rows[: max(0, limit)]

    async def decide(self, run_id: int, external_ids: Sequence[str]) -> None:
        for external_id in external_ids:
            entry = self._t.reconcile_seen.get((run_id, external_id))
            if entry is not None:
                self._t.reconcile_seen[(run_id, external_id)] = (entry[0], True)

    async def forget_seen(self, run_id: int) -> None:
        for key in [k for k in self._t.reconcile_seen if k[0] == run_id]:
            del self._t.reconcile_seen[key]
