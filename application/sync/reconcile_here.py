"""A reconcile run executed in this process (``custsync reconcile``): claimed (or resumed), run to
its end or to a stop, and reported with every finding. The worker's runs are queued instead
(``request_run``) and run by ``run_reconciler``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from application.ports import Integrations
from application.sync.context import SyncContext
from application.sync.reconcile import Reconciler, start_here
from domain.drift import Finding, MatchBy, ReconcileRun

FINDINGS_PAGE = 1000


class Reconciled(msgspec.Struct, frozen=True):
    run: ReconcileRun  # as it ended: done, failed, or interrupted (resumable)
    findings: list[Finding]  # everything it found, customers in sync aside, in the order found


async def reconcile_here(
    ctx: SyncContext,
    integrations: Integrations,
    system: str,
    owner: str,
    *,
    dry_run: bool,
    match_by: MatchBy | None,
    stopping: asyncio.Event,
    presumed_dead: Callable[[str], bool],
    started: Callable[[ReconcileRun, bool], None] = lambda run, resumed: None,
    progress: Callable[[ReconcileRun], None] | None = None,
) -> Reconciled:
    """Claim a run of ``system`` for ``owner`` (a new one, or the interrupted one with the same
    options, resumed from its checkpoint: ``started`` hears which), execute it until it ends or
    ``stopping`` is set, and read back what it found."""
    run, resumed = await start_here(
        ctx, system, owner, dry_run=dry_run, match_by=match_by, trigger="cli", presumed_dead=presumed_dead
    )
    started(run, resumed)
    run = await Reconciler(run, integrations[system], integrations, ctx, stopping=stopping, progress=progress).execute()
    findings: list[Finding] = []
    async with ctx.uow_factory() as uow:
        after = None
        while True:
            page = await uow.reconcile.findings(run.id, after=after, limit=FINDINGS_PAGE)
            findings += page
            if len(page) < FINDINGS_PAGE:
                return Reconciled(run, findings)
            after = page[-1].seq
