"""Reconcile runs: asked for (the API, the schedule), claimed by a runner (the worker's, or the
CLI's own), taken over when their runner died; and the worker's runner loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import msgspec

from application.errors import BackendUnavailable
from application.ports import Clock, Integrations, SyncMetrics, UnitOfWorkFactory
from application.sync.context import SyncContext
from application.sync.reconcile.run import Reconciler
from application.sync.waiting import sleep_unless_stopped
from domain.drift import MatchBy, ReconcileRun, RunStatus

log = logging.getLogger(__name__)
STALE_AFTER = timedelta(seconds=30)  # a running run without a heartbeat this long was interrupted


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
                await schedule_due(ctx, integrations, interval)
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


async def schedule_due(ctx: SyncContext, integrations: Integrations, interval: float) -> None:
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
