"""One claimed reconcile run, executed phase by phase from its checkpoint to its end (or until
stopped: it stays resumable): each page compared (``comparison``), stored with its checkpoint in
one transaction, then fixed (``fixes``). Outages are waited out; a run taken over stops."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import msgspec

from application.errors import (
    AccountChanged,
    BackendUnavailable,
    ExternalCustomerMissing,
    IntegrationError,
    RetryableIntegrationError,
)
from application.ports import Integration, Integrations, Page, UnitOfWork
from application.sync.catchup import start_from
from application.sync.context import SyncContext
from application.sync.reconcile.comparison import (
    EXTERNAL_PAGE,
    Paged,
    compare_listed,
    missing_links,
    unlinked_customers,
    unlinked_records,
)
from application.sync.reconcile.fixes import Fixes
from application.sync.waiting import Backoff, Stopped, keep_trying, logged
from domain.drift import Finding, FindingKind, Phase, ReconcileRun, RunStatus
from domain.errors import ConcurrentUpdate
from domain.messages import ExternalCustomer

log = logging.getLogger(__name__)
T = TypeVar("T")

READ_AHEAD = 3  # pages of the external list read ahead of the comparison
HEARTBEAT_EVERY = 5.0  # seconds

Progress = Callable[[ReconcileRun], None]
PageOf = Callable[[UnitOfWork, ReconcileRun, datetime], Awaitable[Paged]]


class RunLost(Exception):
    """Another runner took the run over (ours was presumed dead), or it was cancelled."""


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
        self._integration, self._ctx = integration, ctx
        self._stopping = stopping or asyncio.Event()
        self._lost = False  # the heartbeat found the run taken over (or cancelled): stop touching it
        self._progress = progress or (lambda run: None)
        self._max_delay = max_delay
        self._records: dict[str, ExternalCustomer] = {}  # the page's listed records, for its fixes
        self._fixes = Fixes(
            run.id,
            run.dry_run,
            integration.system,
            integrations,
            ctx,
            patiently=self._patiently,
            halted=self._halted,
            listed=self._records,
        )

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
                await self._fixes.apply_planned()  # fixes found before an interruption, not applied yet
            phases: dict[Phase, Callable[[], Awaitable[None]]] = {
                Phase.EXTERNAL: self._external,
                Phase.MISSING: functools.partial(self._paged, missing_links, Phase.CATALOG),
                Phase.CATALOG: functools.partial(self._paged, unlinked_customers, Phase.UNLINKED),
                Phase.UNLINKED: functools.partial(self._paged, unlinked_records, Phase.DONE),
            }
            while self.run.phase is not Phase.DONE and not self._halted():
                await phases[self.run.phase]()
            if self.run.phase is Phase.DONE and not self.run.dry_run:
                await self._fixes.apply_planned()  # any left planned (a commit whose answer was lost)
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
                    findings = await self._patiently(functools.partial(self._compare_page, page))
                    await self._fixes.apply(findings)
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

    async def _compare_page(self, page: Page) -> list[Finding]:
        """A page of the list compared and stored with the checkpoint after it, in one transaction."""
        now, next_cursor = self._ctx.clock.now(), page.next_cursor
        async with self._ctx.uow_factory() as uow:
            listed = await compare_listed(uow, self.run, self._ctx.installation, page.customers, now)
            await uow.reconcile.mark_seen(self.run.id, listed.seen)
            added = await uow.reconcile.add_findings(listed.findings)
            advanced = self.run.counted(external_listed=len(page.customers), in_sync=listed.in_sync, **_kinds(added))
            advanced = msgspec.structs.replace(
                advanced, checkpoint=next_cursor, phase=Phase.EXTERNAL if next_cursor else Phase.MISSING, heartbeat_at=now
            )
            await self._save(uow, advanced)
            await uow.commit()
        self.run = advanced  # only once committed: a failed commit compares the page again
        self._records.update(listed.differing)
        self._progress(self.run)
        return added

    # -- phases 2 to 4: pages of the catalog and of what the list left -----------------------------
    async def _paged(self, page_of: PageOf, next_phase: Phase) -> None:
        """A phase after the list: page by page, each checkpointed with what it found, then fixed."""
        while not self._halted():
            findings, done = await self._patiently(functools.partial(self._page, page_of, next_phase))
            await self._fixes.apply(findings)
            if done:
                return

    async def _page(self, page_of: PageOf, next_phase: Phase) -> tuple[list[Finding], bool]:
        """One page compared, its findings and the checkpoint after it stored in its transaction;
        the findings it added are the ones to apply."""
        now = self._ctx.clock.now()
        async with self._ctx.uow_factory() as uow:
            paged = await page_of(uow, self.run, now)
            added = await uow.reconcile.add_findings(paged.findings)
            counted = {} if paged.in_sync is None else {"in_sync": paged.in_sync}
            advanced = self.run.counted(**counted, **_kinds(added))
            advanced = msgspec.structs.replace(
                advanced,
                phase=next_phase if paged.done else advanced.phase,
                checkpoint=paged.checkpoint,
                heartbeat_at=now,
            )
            await self._save(uow, advanced)
            await uow.commit()
        self.run = advanced  # only once committed: a failed commit compares the page again
        self._progress(self.run)
        return added, paged.done

    # -- plumbing ------------------------------------------------------------------------------
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
