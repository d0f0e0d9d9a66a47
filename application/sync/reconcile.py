"""Reconcile: compare every catalog customer with every record of one external system, report
what differs (``domain.drift``), and fix it through the paths live changes take.

A run reads the external system's strongly consistent list once, page by page (never its search
index), in four phases, each with a checkpoint stored with the run:

1. ``external``: each listed record is compared with the catalog customer it is linked to; the
   unlinked ones are kept in the run's working set (``reconcile_seen``), the page is checkpointed.
2. ``missing``: links whose record the list did not show (deleted there, or unknown to the account).
3. ``catalog``: catalog customers linked to nothing there: exported, linked to their one email
   match (``--match-by email``), or reported as ambiguous.
4. ``unlinked``: external records nothing matched: imported.

Fixes are journaled as findings: found (``planned``) and checkpointed first, then applied and
marked, each in the same transaction as its effect where the effect is a database write (an
outbox event, a link), or under an event id of the run's own where it goes through the inbound
use case (the inbox applies an event id once). So a run interrupted anywhere and resumed applies
every fix exactly once. Outages are waited out; a run whose runner died is taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import msgspec

from application.customers.changes import STORE_ATTEMPTS, record_change, retried_on_concurrent_update
from application.errors import (
    AccountChanged,
    BackendUnavailable,
    ExternalCustomerMissing,
    IntegrationError,
    RetryableIntegrationError,
)
from application.ports import (
    CREATE_IN_FLIGHT,
    Clock,
    Integration,
    Integrations,
    Page,
    SeenExternal,
    SyncMetrics,
    UnitOfWork,
    UnitOfWorkFactory,
)
from application.sync.catchup import start_from
from application.sync.context import SyncContext
from application.sync.inbound import sync_inbound
from application.sync.waiting import Backoff, Stopped, keep_trying, logged, sleep_unless_stopped
from domain.drift import (
    Finding,
    FindingKind,
    Fix,
    FixStatus,
    MatchBy,
    Phase,
    ReconcileRun,
    RunStatus,
    compare_linked,
    email_key,
    first_link_data,
)
from domain.errors import ConcurrentUpdate
from domain.mapping import ExternalMapping
from domain.messages import ChangeKind, ExternalChange, ExternalCustomer
from domain.ownership import proves_own_create

log = logging.getLogger(__name__)
T = TypeVar("T")

EXTERNAL_PAGE = 100  # the largest page external lists give (Stripe: 100)
READ_AHEAD = 3  # pages of the external list read ahead of the comparison
CATALOG_PAGE = 500
HEARTBEAT_EVERY = 5.0  # seconds
STALE_AFTER = timedelta(seconds=30)  # a running run without a heartbeat this long was interrupted
FIX_BATCH = 200

Progress = Callable[[ReconcileRun], None]


class RunLost(Exception):
    """Another runner took the run over (ours was presumed dead), or it was cancelled."""


class RunInProgress(Exception):
    def __init__(self, run: ReconcileRun) -> None:
        super().__init__(f"reconcile run {run.id} of {run.system} is in progress (runner {run.owner}); wait for it to finish")
        self.run = run


class OtherRunActive(Exception):
    def __init__(self, run: ReconcileRun) -> None:
        options = "dry run" if run.dry_run else "fixing"
        super().__init__(
            f"reconcile run {run.id} of {run.system} ({options}, match by {run.match_by or 'nothing'}) is {run.status.value}; "
            "wait for it, or ask for the same options to follow it"
        )
        self.run = run


async def request_run(
    uow_factory: UnitOfWorkFactory, clock: Clock, system: str, *, dry_run: bool, match_by: MatchBy | None, trigger: str
) -> tuple[ReconcileRun, bool]:
    """Queue a run for a runner (the worker) to take: ``(run, True)``; or the active run with the
    same options, ``(run, False)``. An active run with other options raises OtherRunActive."""
    async with uow_factory() as uow:
        run, created = await uow.reconcile.add_run(
            ReconcileRun(
                id=0,
                system=system,
                status=RunStatus.QUEUED,
                dry_run=dry_run,
                match_by=match_by,
                trigger=trigger,
                created_at=clock.now(),
            )
        )
        await uow.commit()
    if not created and not run.has_options(dry_run, match_by):
        raise OtherRunActive(run)
    return run, created


async def start_here(
    ctx: SyncContext,
    system: str,
    owner: str,
    *,
    dry_run: bool,
    match_by: MatchBy | None,
    trigger: str,
    presumed_dead: Callable[[str], bool] = lambda owner: False,
) -> tuple[ReconcileRun, bool]:
    """Claim a run to execute in this process (the CLI): a new one, or the interrupted one with the
    same options -- ``(run, resumed)``. An interrupted run with other options is cancelled (every
    fix it applied stands on its own); a run another live runner holds raises RunInProgress."""
    now = ctx.clock.now()
    async with ctx.uow_factory() as uow:
        active = await uow.reconcile.active_run(system)
    if active is not None:
        stale = active.status is RunStatus.QUEUED or active.heartbeat_at is None or active.heartbeat_at < now - STALE_AFTER
        if active.owner is not None and presumed_dead(active.owner):
            stale = True
        if not stale:
            raise RunInProgress(active)
        if active.has_options(dry_run, match_by):
            claimed = await _claim(ctx, active.id, owner, stale_before=ctx.clock.now() + timedelta(seconds=1))
            if claimed is not None:
                return claimed, active.status is RunStatus.RUNNING
            raise RunInProgress(active)
        async with ctx.uow_factory() as uow:
            taken = await uow.reconcile.claim_run(active.id, owner, now, now + timedelta(seconds=1))
            if taken is not None:
                await uow.reconcile.save_run(
                    msgspec.structs.replace(
                        taken,
                        status=RunStatus.CANCELLED,
                        finished_at=now,
                        error=f"cancelled by a new run ({trigger}) with other options",
                    )
                )
                await uow.commit()
        log.warning("reconcile: interrupted run %s (other options) cancelled; the fixes it applied stand", active.id)
    run, _ = await request_run(ctx.uow_factory, ctx.clock, system, dry_run=dry_run, match_by=match_by, trigger=trigger)
    claimed = await _claim(ctx, run.id, owner, stale_before=now)
    if claimed is None:
        raise RunInProgress(run)
    return claimed, False


async def claim_next(ctx: SyncContext, owner: str) -> ReconcileRun | None:
    """The oldest queued (or interrupted) run, now ours to execute (the worker's runner)."""
    return await _claim(ctx, None, owner, stale_before=ctx.clock.now() - STALE_AFTER)


async def _claim(ctx: SyncContext, run_id: int | None, owner: str, stale_before: datetime) -> ReconcileRun | None:
    async with ctx.uow_factory() as uow:
        run = await uow.reconcile.claim_run(run_id, owner, ctx.clock.now(), stale_before)
        await uow.commit()
    return run


class Reconciler:
    """Executes one claimed run to its end (or until stopped: it stays resumable)."""

    def __init__(
        self,
        run: ReconcileRun,
        integration: Integration,
        integrations: Integrations,
        ctx: SyncContext,
        *,
        stopping: asyncio.Event | None = None,
        progress: Progress | None = None,
        max_delay: float = 30.0,
    ) -> None:
        self.run = run
        self._integration, self._integrations, self._ctx = integration, integrations, ctx
        self._stopping = stopping or asyncio.Event()
        self._lost = False  # the heartbeat found the run taken over (or cancelled): stop touching it
        self._progress = progress or (lambda run: None)
        self._max_delay = max_delay
        self._records: dict[str, ExternalCustomer] = {}  # the page's listed records, for its fixes

    async def execute(self) -> ReconcileRun:
        """Run every phase from the checkpoint on; the finished run (``done`` or ``failed``), or the
        run as it stands if stopped (resumable)."""
        beating = asyncio.create_task(self._heartbeat())
        try:
            if not self.run.dry_run:
                started, owner = self.run.started_at, self.run.owner
                assert started is not None and owner is not None  # a run that is not a dry run has both
                # A first sync before the worker ever ran: its catch-up starts where this list did.
                await self._patiently(
                    lambda: start_from(self._ctx.uow_factory, self._integration.system, started, owner, self._ctx.clock)
                )
                await self._apply_planned()  # fixes found before an interruption, not applied yet
            phases: dict[Phase, Callable[[], Awaitable[None]]] = {
                Phase.EXTERNAL: self._external,
                Phase.MISSING: lambda: self._paged(self._missing_page),
                Phase.CATALOG: lambda: self._paged(self._catalog_page),
                Phase.UNLINKED: lambda: self._paged(self._unlinked_page),
            }
            while self.run.phase is not Phase.DONE and not self._halted():
                await phases[self.run.phase]()
            if self.run.phase is Phase.DONE and not self.run.dry_run:
                await self._apply_planned()  # any left planned (a commit whose answer was lost)
            if self.run.phase is Phase.DONE and not self._halted():
                await self._finish(RunStatus.DONE)
        except (AccountChanged, _Fatal) as exc:
            await self._finish(RunStatus.FAILED, str(exc))
        except Stopped:
            log.info("reconcile %s stopped in phase %s; it resumes from its checkpoint", self.run.id, self.run.phase.value)
        except RunLost as exc:
            log.warning("%s: this runner stops", exc)
        finally:
            beating.cancel()
        return self.run

    # -- phase 1: the external list ---------------------------------------------------------------
    async def _external(self) -> None:
        """The list is read ahead by a task of its own (each page needs the previous one's last
        id, so pages come one after another at the rate budget) while this one compares; the
        queue bounds what is held in memory to ``READ_AHEAD`` pages."""
        cursor = self.run.checkpoint
        while not self._halted():
            pages: asyncio.Queue[Page | BaseException] = asyncio.Queue(maxsize=READ_AHEAD)
            reader = asyncio.create_task(self._read_ahead(cursor, pages))
            try:
                while not self._halted():
                    page = await pages.get()
                    if isinstance(page, ExternalCustomerMissing):
                        # The record the checkpoint names was deleted meanwhile: read the list
                        # again from its start (a page compared again adds nothing twice).
                        log.info(
                            "reconcile %s: the list's checkpoint %s is gone; reading the list from the start", self.run.id, cursor
                        )
                        cursor = None
                        break
                    if isinstance(page, BaseException):
                        raise page
                    findings = await self._patiently(functools.partial(self._compare_page, page, page.next_cursor))
                    await self._apply(findings)
                    self._records.clear()
                    if page.next_cursor is None:
                        return
                    cursor = page.next_cursor
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _read_ahead(self, cursor: str | None, pages: asyncio.Queue[Page | BaseException]) -> None:
        try:
            while True:
                page = await self._list(cursor)
                await pages.put(page)
                if page.next_cursor is None:
                    return
                cursor = page.next_cursor
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the comparing side, which raises it there
            await pages.put(exc)

    async def _list(self, cursor: str | None) -> Page:
        return await self._patiently(lambda: self._integration.list_customers(limit=EXTERNAL_PAGE, cursor=cursor))

    async def _compare_page(self, page: Page, next_cursor: str | None) -> list[Finding]:
        run, system, now = self.run, self._integration.system, self._ctx.clock.now()
        findings: list[Finding] = []
        seen: list[SeenExternal] = []
        in_sync = 0
        async with self._ctx.uow_factory() as uow:
            # In sync (nearly every link) is told where the data is; the rest is read and classified.
            linked, differing = await uow.reconcile.linked_in_page(run.id, system, page.customers)
            in_sync = len(linked) - len(differing)
            mappings = await uow.mappings.by_external_ids(system, sorted(differing)) if differing else {}
            customers = await uow.customers.get_many([m.customer_id for m in mappings.values()]) if mappings else {}
            for x in page.customers:
                subject = f"external:{x.external_id}"
                if x.external_id in linked:
                    mapping = mappings.get(x.external_id)
                    customer = customers.get(mapping.customer_id) if mapping is not None else None
                    if mapping is None or customer is None:
                        continue  # in sync (or unlinked since: the other phases see it)
                    kind, fix, fields, detail = compare_linked(customer, mapping, x)
                    if kind is FindingKind.IN_SYNC:
                        in_sync += 1
                        continue
                    self._records[x.external_id] = x
                    findings.append(self._finding(subject, kind, fix, now, customer.id, x.external_id, fields, detail))
                    continue
                claim = x.claim
                if claim.installation == self._ctx.installation and claim.internal_id is not None:
                    seen.append(SeenExternal(x.external_id))  # never a candidate for import or matching
                    intent = await uow.create_intents.get(claim.internal_id, system)
                    if proves_own_create(claim, self._ctx.installation, intent):
                        detail = "made by our create, not linked yet: the worker links it"
                        findings.append(
                            self._finding(
                                subject, FindingKind.ONLY_THERE, Fix.NONE, now, claim.internal_id, x.external_id, (), detail
                            )
                        )
                    else:
                        detail = (
                            f"its metadata claims catalog customer {claim.internal_id} of this installation without proof "
                            "(a restored database?): neither linked nor imported; link it by hand"
                        )
                        findings.append(
                            self._finding(
                                subject, FindingKind.AMBIGUOUS, Fix.NONE, now, claim.internal_id, x.external_id, (), detail
                            )
                        )
                    continue
                seen.append(SeenExternal(x.external_id, x))  # decided once the catalog was read
            await uow.reconcile.mark_seen(run.id, seen)
            added = await uow.reconcile.add_findings(findings)
            advanced = self.run.counted(external_listed=len(page.customers), in_sync=in_sync, **_kinds(added))
            advanced = msgspec.structs.replace(
                advanced,
                checkpoint=next_cursor,
                phase=Phase.EXTERNAL if next_cursor else Phase.MISSING,
                heartbeat_at=now,
            )
            if next_cursor is None:
                advanced = msgspec.structs.replace(advanced, checkpoint=None)
            await self._save(uow, advanced)
            await uow.commit()
        self.run = advanced
        self._progress(self.run)
        return added

    # -- phase 2: links the list did not show ------------------------------------------------------
    async def _missing_page(self) -> tuple[list[Finding], bool]:
        run, system, now = self.run, self._integration.system, self._ctx.clock.now()
        after = int(run.checkpoint) if run.checkpoint else None
        assert run.started_at is not None
        findings: list[Finding] = []
        in_sync = 0
        async with self._ctx.uow_factory() as uow:
            links = await uow.reconcile.unseen_links(run.id, system, run.started_at, after, CATALOG_PAGE)
            customers = await uow.customers.get_many([m.customer_id for m in links])
            for mapping in links:
                customer = customers.get(mapping.customer_id)
                if customer is None or customer.deleted:
                    in_sync += 1  # deleted on both sides (lists leave deleted records out)
                    continue
                subject = f"customer:{mapping.customer_id}"
                if mapping.broken is not None:
                    detail = f"the link is broken: {mapping.broken}"
                    findings.append(
                        self._finding(
                            subject, FindingKind.MISSING_THERE, Fix.NONE, now, customer.id, mapping.external_id, (), detail
                        )
                    )
                else:
                    detail = f"not listed by {system}: re-fetched (deleted there: deleted here; unknown there: the link breaks)"
                    findings.append(
                        self._finding(
                            subject, FindingKind.MISSING_THERE, Fix.REFRESH, now, customer.id, mapping.external_id, (), detail
                        )
                    )
            done = len(links) < CATALOG_PAGE
            return await self._checkpoint(
                uow,
                findings,
                now,
                Phase.CATALOG if done else None,
                None if done else str(links[-1].customer_id),
                in_sync=in_sync,
            )

    # -- phase 3: catalog customers linked to nothing there ---------------------------------------
    async def _catalog_page(self) -> tuple[list[Finding], bool]:
        run, system, now = self.run, self._integration.system, self._ctx.clock.now()
        after = int(run.checkpoint) if run.checkpoint else None
        assert run.started_at is not None
        findings: list[Finding] = []
        async with self._ctx.uow_factory() as uow:
            customers = await uow.reconcile.unlinked_customers(system, run.started_at, after, CATALOG_PAGE)
            keys = sorted({k for c in customers if (k := email_key(c.email)) is not None})
            there = await uow.reconcile.unlinked_seen(run.id, keys)
            here = await uow.reconcile.unlinked_customer_ids(system, keys)
            held = await uow.reconcile.held_back(run.id, system, [c.id for c in customers])
            set_aside: list[str] = []
            for customer in customers:
                key = email_key(customer.email)
                candidates = there.get(key, []) if key else []
                reason = held.get(customer.id)
                if reason is not None:
                    # Never linked to another record: a record there is, or is being made, this
                    # customer. Its namesakes there are not imported either. A create in flight (or
                    # given up: dead-lettered) is sent again -- the same create under its own key,
                    # which Stripe answers with the customer it made; a claimed one is not.
                    if candidates:
                        set_aside += [x.external_id for x in candidates]
                        ids_there = ", ".join(x.external_id for x in candidates)
                        findings.append(
                            self._finding(
                                f"email:{key}",
                                FindingKind.AMBIGUOUS,
                                Fix.NONE,
                                now,
                                customer.id,
                                candidates[0].external_id,
                                ("email",),
                                f"catalog {customer.id} ({reason}) and {system} {ids_there} share {key}: "
                                "neither linked nor imported; a person decides",
                            )
                        )
                    if reason == CREATE_IN_FLIGHT:
                        findings.append(
                            self._finding(
                                f"customer:{customer.id}",
                                FindingKind.ONLY_HERE,
                                Fix.EXPORT,
                                now,
                                customer.id,
                                None,
                                (),
                                f"{reason}: sent again, the same create under its key (never a second customer)",
                            )
                        )
                    elif not candidates:
                        findings.append(
                            self._finding(
                                f"customer:{customer.id}",
                                FindingKind.ONLY_HERE,
                                Fix.NONE,
                                now,
                                customer.id,
                                None,
                                (),
                                f"{reason}: not exported",
                            )
                        )
                    continue
                if not candidates:
                    findings.append(
                        self._finding(
                            f"customer:{customer.id}",
                            FindingKind.ONLY_HERE,
                            Fix.EXPORT,
                            now,
                            customer.id,
                            None,
                            (),
                            f"never pushed to {system}: created there",
                        )
                    )
                    continue
                namesakes = here.get(key, [customer.id]) if key else [customer.id]
                set_aside += [x.external_id for x in candidates]
                if run.match_by is MatchBy.EMAIL and len(candidates) == 1 and len(namesakes) == 1:
                    [match] = candidates
                    findings.append(
                        self._finding(
                            f"customer:{customer.id}",
                            FindingKind.ONLY_HERE,
                            Fix.LINK,
                            now,
                            customer.id,
                            match.external_id,
                            tuple(sorted(customer.data.changed_fields(match.data))),
                            f"the one {system} record with its email: linked",
                        )
                    )
                    continue
                ids_there = ", ".join(x.external_id for x in candidates)
                ids_here = ", ".join(str(i) for i in namesakes)
                how = (
                    "--match-by email links one-to-one matches only"
                    if run.match_by is MatchBy.EMAIL
                    else "neither imported nor exported, so that no one is duplicated: `--match-by email` links a "
                    "one-to-one match"
                )
                findings.append(
                    self._finding(
                        f"email:{key}",
                        FindingKind.AMBIGUOUS,
                        Fix.NONE,
                        now,
                        customer.id,
                        candidates[0].external_id,
                        ("email",),
                        f"catalog {ids_here} and {system} {ids_there} share {key}: {how}; a person decides",
                    )
                )
            await uow.reconcile.decide(run.id, set_aside)
            done = len(customers) < CATALOG_PAGE
            return await self._checkpoint(
                uow, findings, now, Phase.UNLINKED if done else None, None if done else str(customers[-1].id)
            )

    # -- phase 4: external records linked to nothing here ------------------------------------------
    async def _unlinked_page(self) -> tuple[list[Finding], bool]:
        run, now = self.run, self._ctx.clock.now()
        async with self._ctx.uow_factory() as uow:
            records = await uow.reconcile.undecided(run.id, run.checkpoint, EXTERNAL_PAGE)
            findings = [
                self._finding(
                    f"external:{x.external_id}",
                    FindingKind.ONLY_THERE,
                    Fix.IMPORT,
                    now,
                    None,
                    x.external_id,
                    (),
                    "linked to no catalog customer: imported",
                )
                for x in records
            ]
            done = len(records) < EXTERNAL_PAGE
            return await self._checkpoint(
                uow, findings, now, Phase.DONE if done else None, None if done else records[-1].external_id
            )

    # -- the phases' pages ------------------------------------------------------------------------
    async def _paged(self, page: Callable[[], Awaitable[tuple[list[Finding], bool]]]) -> None:
        """A phase after the list: page by page, each checkpointed with what it found, then fixed."""
        while not self._halted():
            findings, done = await self._patiently(page)
            await self._apply(findings)
            if done:
                return

    async def _checkpoint(
        self,
        uow: UnitOfWork,
        findings: list[Finding],
        now: datetime,
        next_phase: Phase | None,
        checkpoint: str | None,
        **counts: int,
    ) -> tuple[list[Finding], bool]:
        """Store a page's findings and the checkpoint after it (``next_phase``: this phase is
        done) in the page's transaction; the findings it added are the ones to apply."""
        added = await uow.reconcile.add_findings(findings)
        advanced = self.run.counted(**counts, **_kinds(added))
        advanced = msgspec.structs.replace(
            advanced,
            phase=next_phase or advanced.phase,
            checkpoint=checkpoint,
            heartbeat_at=now,
        )
        await self._save(uow, advanced)
        await uow.commit()
        self.run = advanced  # only once committed: a failed commit compares the page again
        self._progress(self.run)
        return added, next_phase is not None

    # -- fixes -----------------------------------------------------------------------------------
    async def _apply_planned(self) -> None:
        while not self._halted():
            async with self._ctx.uow_factory() as uow:
                planned = await uow.reconcile.planned(self.run.id, FIX_BATCH)
            await self._apply(planned, resumed=True)
            if len(planned) < FIX_BATCH:
                return

    async def _apply(self, findings: list[Finding], resumed: bool = False) -> None:
        if self.run.dry_run:
            return
        for finding in findings:
            if finding.fix is Fix.NONE or finding.fix_status is not FixStatus.PLANNED:
                continue
            if self._halted():
                return  # the rest stay planned: a resumed run applies them
            status, note = await self._patiently(functools.partial(self._fix, finding, resumed))
            await self._patiently(functools.partial(self._mark, finding, status, note))

    async def _fix(self, finding: Finding, resumed: bool) -> tuple[FixStatus, str | None]:
        if finding.fix in (Fix.REFRESH, Fix.IMPORT):
            return await self._inbound(finding, resumed)
        try:
            if finding.fix is Fix.LINK:
                return await retried_on_concurrent_update(lambda: self._link(finding), STORE_ATTEMPTS)
            return await retried_on_concurrent_update(lambda: self._outbound(finding), STORE_ATTEMPTS)
        except ConcurrentUpdate:
            return FixStatus.FAILED, "the customer kept changing while the fix was applied"

    async def _inbound(self, finding: Finding, resumed: bool) -> tuple[FixStatus, str | None]:
        """Through the inbound use case, under an event id of this run's own: applied once."""
        assert finding.external_id is not None
        system = self._integration.system
        record: ExternalCustomer | None = None
        if finding.fix is Fix.IMPORT:
            async with self._ctx.uow_factory() as uow:
                record = await uow.reconcile.seen_record(self.run.id, finding.external_id)
        elif finding.kind is FindingKind.DIFFERS and not resumed:
            record = self._records.get(finding.external_id)
        if record is None:
            record = ExternalCustomer.unread(finding.external_id)  # nothing read to go by: re-fetched
        change = ExternalChange(
            event_id=f"reconcile-{self.run.id}-{finding.external_id}",
            system=system,
            kind=ChangeKind.CREATED if finding.fix is Fix.IMPORT else ChangeKind.UPDATED,
            external_id=finding.external_id,
            occurred_at=self._ctx.clock.now(),
            customer=record,
            observed=True,
        )
        try:
            await sync_inbound(change, self._integrations, self._ctx)
        except AccountChanged:
            raise
        except IntegrationError as exc:
            if exc.retryable:
                raise
            return FixStatus.FAILED, str(exc)
        return FixStatus.APPLIED, None

    async def _outbound(self, finding: Finding) -> tuple[FixStatus, str | None]:
        """An outbox event, in the transaction that marks the fix applied."""
        assert finding.customer_id is not None
        system = self._integration.system
        async with self._ctx.uow_factory() as uow:
            customer = await uow.customers.get(finding.customer_id)
            mapping = await uow.mappings.get(finding.customer_id, system)
            if customer is None:
                return FixStatus.SKIPPED, "the customer is gone"
            if finding.fix is Fix.EXPORT:
                if customer.deleted or mapping is not None:
                    return FixStatus.SKIPPED, "linked or deleted meanwhile"
                await record_change(uow, customer, ChangeKind.CREATED, forced_for=system)  # decided by this run: never held there
            else:
                if mapping is None:
                    return FixStatus.SKIPPED, "unlinked meanwhile"
                await record_change(uow, customer, ChangeKind.DELETED if customer.deleted else ChangeKind.UPDATED)
            await uow.reconcile.set_fix_status(self.run.id, finding.subject, FixStatus.APPLIED)
            await uow.commit()
        return FixStatus.APPLIED, None

    async def _link(self, finding: Finding) -> tuple[FixStatus, str | None]:
        """Link a catalog customer to its one email match, in one transaction: the link (its
        baseline is what the record holds), the catalog's merged content, and the outbox events
        that tag the record as ours and send it what the catalog holds beyond it."""
        assert finding.customer_id is not None and finding.external_id is not None
        system, now = self._integration.system, self._ctx.clock.now()
        async with self._ctx.uow_factory() as uow:
            customer = await uow.customers.get(finding.customer_id)
            record = await uow.reconcile.seen_record(self.run.id, finding.external_id)
            if (
                customer is None
                or customer.deleted
                or record is None
                or await uow.mappings.get(customer.id, system) is not None
                or await uow.mappings.by_external_id(system, record.external_id) is not None
            ):
                return FixStatus.SKIPPED, "linked, unlinked or deleted meanwhile"
            if email_key(customer.email) != email_key(record.data.email):
                return FixStatus.SKIPPED, "its email changed meanwhile"
            if await uow.create_intents.get(customer.id, system) is not None:
                return FixStatus.SKIPPED, "a create of ours is in flight for it: the worker links that one"
            merged = first_link_data(customer.data, record.data, self._ctx.policy)
            revised = customer.revised(merged, now)
            link = ExternalMapping(
                customer_id=customer.id,
                system=system,
                external_id=record.external_id,
                synced=record.data,
                synced_version=0,
                synced_at=now,
            )
            if revised.data == record.data:
                link = link.synced_to(revised, record.data, now)
            await uow.mappings.save(link)
            # Tagged as ours by the worker (a create that came from there), then what the record
            # lacks of the catalog's content is sent; values taken from it go to every other system.
            await record_change(uow, revised, ChangeKind.CREATED, origin=system)
            if revised.data != record.data:
                await record_change(uow, revised, ChangeKind.UPDATED)
            elif revised is not customer:
                await record_change(uow, revised, ChangeKind.UPDATED, origin=system)
            await uow.reconcile.set_fix_status(self.run.id, finding.subject, FixStatus.APPLIED)
            await uow.commit()
        return FixStatus.APPLIED, None

    async def _mark(self, finding: Finding, status: FixStatus, note: str | None) -> None:
        if status is FixStatus.APPLIED and finding.fix not in (Fix.REFRESH, Fix.IMPORT):
            return  # marked in the fix's own transaction
        async with self._ctx.uow_factory() as uow:
            await uow.reconcile.set_fix_status(self.run.id, finding.subject, status, note)
            await uow.commit()

    # -- plumbing ------------------------------------------------------------------------------
    def _finding(
        self,
        subject: str,
        kind: FindingKind,
        fix: Fix,
        at: datetime,
        customer_id: int | None,
        external_id: str | None,
        fields: tuple[str, ...],
        detail: str | None,
    ) -> Finding:
        status = FixStatus.NONE if fix is Fix.NONE else FixStatus.PLANNED
        return Finding(
            run_id=self.run.id,
            subject=subject,
            kind=kind,
            fix=fix,
            fix_status=status,
            at=at,
            customer_id=customer_id,
            external_id=external_id,
            fields=fields,
            detail=detail,
        )

    async def _save(self, uow: UnitOfWork, run: ReconcileRun) -> None:
        """Stored with the caller's transaction; the caller takes ``run`` as its own only once that
        commits (a failed commit retries the same page from the same checkpoint)."""
        if not await uow.reconcile.save_run(run):
            raise RunLost(f"reconcile run {run.id} was taken over or cancelled")

    async def _finish(self, status: RunStatus, error: str | None = None) -> None:
        now = self._ctx.clock.now()

        async def store() -> None:
            async with self._ctx.uow_factory() as uow:
                fixes = await uow.reconcile.fix_counts(self.run.id)
                # Kinds and fixes as stored (a page whose commit answer was lost counted nothing the
                # second time); what is only counted (records listed, in sync) as the run went.
                kinds = {k.value for k in FindingKind} - {FindingKind.IN_SYNC.value}
                counts = {k: v for k, v in self.run.counts.items() if not k.startswith("fix") and k not in kinds}
                counts.update(await uow.reconcile.kind_counts(self.run.id))
                counts.update({f"fix_{state}": n for state, n in fixes.items() if n})
                finished = msgspec.structs.replace(
                    self.run,
                    status=status,
                    finished_at=now,
                    heartbeat_at=now,
                    error=error,
                    counts=counts,
                )
                await self._save(uow, finished)
                await uow.reconcile.forget_seen(finished.id)
                await uow.commit()
            self.run = finished

        await self._patiently(store)
        self._progress(self.run)
        log.info("reconcile %s of %s %s: %s", self.run.id, self.run.system, status.value, _summary(self.run))

    def _halted(self) -> bool:
        return self._stopping.is_set() or self._lost

    async def _heartbeat(self) -> None:
        while True:
            # Wall time, not the injected clock: a fake clock's sleeps are instant, so a heartbeat on
            # it would spin beside the run it watches and move the run's own time.
            await asyncio.sleep(HEARTBEAT_EVERY)
            try:
                async with self._ctx.uow_factory() as uow:
                    alive = await uow.reconcile.heartbeat(self.run.id, self.run.owner or "", self._ctx.clock.now())
                    await uow.commit()
            except BackendUnavailable:
                continue
            if not alive:
                log.warning("reconcile %s was taken over or cancelled: this runner stops", self.run.id)
                self._lost = True
                return

    async def _patiently(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Outages are waited out; a stop, or the run taken over meanwhile, ends the wait (Stopped)."""
        waiting, _ = logged(log, f"reconcile {self.run.id}")
        try:
            return await keep_trying(
                attempt,
                clock=self._ctx.clock,
                stopping=self._stopping,
                backoff=Backoff(cap=self._max_delay),
                passing=lambda error, _: _passing(error),
                waiting=waiting,
                still_wanted=lambda: not self._lost,
            )
        except (ExternalCustomerMissing, AccountChanged, ConcurrentUpdate):
            raise
        except IntegrationError as exc:
            raise _Fatal(str(exc)) from exc


def _passing(error: Exception) -> bool:
    """What a run waits out: an outage of the database, the broker or the system (not a change of
    account, which stops the run, nor a concurrent update, which its caller reads again)."""
    return isinstance(error, BackendUnavailable | RetryableIntegrationError) and not isinstance(error, AccountChanged)


class _Fatal(Exception):
    """A definite refusal the run cannot go on from (bad credentials are waited out instead)."""


def _kinds(findings: list[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.kind.value] = counts.get(f.kind.value, 0) + 1
    return counts


def _summary(run: ReconcileRun) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items())) or "nothing"


async def run_reconciler(
    integrations: Integrations,
    context: Callable[[], Awaitable[SyncContext]],
    clock: Clock,
    owner: str,
    stopping: asyncio.Event,
    *,
    interval: float = 0.0,
    poll: float = 5.0,
    metrics: SyncMetrics | None = None,
) -> None:
    """The worker's runner: executes the queued runs (asked for through the API, or by the
    schedule) one at a time, and takes over runs whose runner died. With ``interval`` > 0 it
    queues a run of each integration whenever its last run is older than that (the scheduled
    drift check: fixes on, no matching). Outages are waited out."""
    while not stopping.is_set():
        try:
            ctx = await context()
            if interval > 0:
                await _schedule(ctx, integrations, interval)
            run = await claim_next(ctx, owner)
            if run is not None:
                integration = integrations.get(run.system)
                if integration is None:
                    await _refuse(ctx, run, f"{run.system} is not a configured integration")
                else:
                    log.info("reconcile %s of %s started (%s)", run.id, run.system, run.trigger)
                    ended = await Reconciler(run, integration, integrations, ctx, stopping=stopping).execute()
                    if metrics is not None and ended.status in (RunStatus.DONE, RunStatus.FAILED):
                        metrics.reconciled(run.system, ended.status.value, ended.counts)
                continue
        except BackendUnavailable as exc:
            log.warning("reconcile runner waits: %s", exc)
        except Exception:
            log.exception("reconcile runner failed; trying again")
        await sleep_unless_stopped(clock, poll, stopping)


async def _schedule(ctx: SyncContext, integrations: Integrations, interval: float) -> None:
    """The interval runs from the last run that could fix something (not a dry run: a report
    changes nothing, so an on-demand ``--dry-run`` never postpones the drift check)."""
    now = ctx.clock.now()
    for system in integrations:
        async with ctx.uow_factory() as uow:
            active = await uow.reconcile.active_run(system)
            runs = await uow.reconcile.runs(system, 1, dry_run=False)
        last = runs[0] if runs else None
        if active is None and (last is None or last.created_at <= now - timedelta(seconds=interval)):
            await request_run(ctx.uow_factory, ctx.clock, system, dry_run=False, match_by=None, trigger="schedule")


async def _refuse(ctx: SyncContext, run: ReconcileRun, error: str) -> None:
    async with ctx.uow_factory() as uow:
        now = ctx.clock.now()
        await uow.reconcile.save_run(msgspec.structs.replace(run, status=RunStatus.FAILED, finished_at=now, error=error))
        await uow.commit()
