"""``custsync reconcile`` and ``custsync resync``: compare whole systems, or push or pull one customer."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, ClassVar

import click
import msgspec

from domain.drift import Finding, FindingKind, MatchBy, ReconcileRun, RunStatus
from entrypoints.cli.dead_letters import short, table
from entrypoints.cli.root import main, read_settings, require_real_integrations, with_backends
from entrypoints.container import Container


@main.command()
@click.option("--system", default="stripe", show_default=True, help="The integration to compare the catalog with.")
@click.option("--dry-run", is_flag=True, help="Report only: change nothing on either side.")
@click.option(
    "--match-by",
    type=click.Choice(["email"]),
    help="Link each unlinked catalog customer to the one unlinked record with its email (first sync).",
)
@click.option("--json", "as_json", is_flag=True, help="The run and its findings as JSON (as the API gives them).")
@click.option("--progress/--no-progress", default=None, help="A progress bar on stderr (default: when stderr is a terminal).")
def reconcile(system: str, dry_run: bool, match_by: str | None, as_json: bool, progress: bool | None) -> None:
    """Compare every catalog customer with every record of the integration, and fix what differs.

    Each difference is fixed through the usual sync paths (conflicts follow CONFLICT_POLICY, the
    history records each fix); ambiguous cases are reported for a person to decide. Interrupted
    (Ctrl-C, a crash, a kill) and run again with the same options, it goes on from its checkpoint
    and applies no fix twice. The worker must run for the fixes to reach the other side.
    """
    from application.sync.reconcile import OtherRunActive, RunInProgress

    settings = read_settings()
    require_real_integrations(settings, "custsync reconcile")
    try:
        run, findings = with_backends(
            lambda c: _reconcile(c, system, dry_run, MatchBy(match_by) if match_by else None, progress),
            "reconcile runs",
        )
    except (RunInProgress, OtherRunActive) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        from entrypoints.http.schemas import FindingOut, ReconcileReportOut, ReconcileRunOut

        click.echo(msgspec.json.encode(ReconcileReportOut(ReconcileRunOut.of(run), [FindingOut.of(f) for f in findings])))
    else:
        click.echo(_report(run, findings))
    if run.status is RunStatus.FAILED:
        raise click.ClickException(f"reconcile run {run.id} failed: {run.error}")
    if run.status is not RunStatus.DONE:
        raise click.ClickException(
            f"reconcile run {run.id} was interrupted in phase {run.phase.value}: run the same command again to resume it"
        )


async def _reconcile(
    c: Container, system: str, dry_run: bool, match_by: MatchBy | None, progress: bool | None
) -> tuple[ReconcileRun, list[Finding]]:
    import signal

    from application.sync.reconcile_here import reconcile_here
    from entrypoints.lifecycle import bind_accounts
    from entrypoints.runtime import presumed_dead, runner_name

    integrations = c.integrations()
    if system not in integrations:
        raise click.ClickException(f"{system} is not a configured integration ({', '.join(sorted(integrations))})")
    await bind_accounts(c, wait=False, required=True)

    def started(run: ReconcileRun, resumed: bool) -> None:
        if resumed:
            click.echo(f"resuming reconcile run {run.id} from its checkpoint (phase {run.phase.value})", err=True)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    bar = _ProgressBar(sys.stderr.isatty() if progress is None else progress, system)
    try:
        done = await reconcile_here(
            await c.sync_contexts()(),
            integrations,
            system,
            runner_name("cli"),
            dry_run=dry_run,
            match_by=match_by,
            stopping=stopping,
            presumed_dead=presumed_dead,
            started=started,
            progress=bar.update,
        )
    finally:
        bar.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return done.run, done.findings


class _ProgressBar:
    """tqdm on stderr: records listed, then catalog pages compared, phase by phase."""

    PHASES: ClassVar[dict[str, str]] = {
        "external": "{system}: listing",
        "missing": "links not listed",
        "catalog": "unlinked catalog customers",
        "unlinked": "unlinked {system} records",
        "done": "done",
    }

    def __init__(self, enabled: bool, system: str) -> None:
        self._bar: Any = None
        self._system = system
        self._listed = 0
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(desc=self.PHASES["external"].format(system=system), unit=" records", file=sys.stderr)

    def update(self, run: ReconcileRun) -> None:
        if self._bar is None:
            return
        listed = run.counts.get("external_listed", 0)
        self._bar.update(max(0, listed - self._listed))
        self._listed = listed
        self._bar.set_description(self.PHASES[run.phase.value].format(system=self._system), refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _report(run: ReconcileRun, findings: list[Finding]) -> str:
    counts = run.counts
    kinds = [kind.value for kind in FindingKind]
    mode = "dry run: nothing was changed" if run.dry_run else "fixes applied through the sync paths"
    lines = [
        f"reconcile run {run.id} of {run.system}: {run.status.value} ({mode}; "
        f"match by {run.match_by.value if run.match_by else 'nothing'})",
        f"{counts.get('external_listed', 0)} {run.system} records listed",
        "",
        "  ".join(f"{k.upper()} {counts.get(k, 0)}" for k in kinds),
        "  ".join(f"FIX {k.removeprefix('fix_').upper()} {v}" for k, v in sorted(counts.items()) if k.startswith("fix_")),
    ]
    if findings:
        shown = findings[:50]
        rows = [("KIND", "CUSTOMER", "EXTERNAL", "FIELDS", "FIX", "STATUS", "DETAIL")]
        rows += [
            (
                f.kind.value,
                str(f.customer_id or "-"),
                f.external_id or "-",
                ",".join(f.fields) or "-",
                f.fix.value,
                f.fix_status.value,
                short(f.detail or "", 100),
            )
            for f in shown
        ]
        lines.append("")
        lines += table(rows)
        if len(findings) > len(shown):
            lines.append(f"... and {len(findings) - len(shown)} more (--json, or GET /api/v1/reconcile/runs/{run.id}/findings)")
    else:
        lines.append("nothing to do: both sides agree")
    return "\n".join(lines)


@main.command("resync")
@click.argument("customer_id", type=click.IntRange(1, 2**63 - 1))
@click.option(
    "--pull", is_flag=True, help="Take the external record's state into the catalog (default: push the catalog's there)."
)
@click.option("--system", default="stripe", show_default=True, help="The integration (INTEGRATIONS) to push to or pull from.")
def resync_command(customer_id: int, pull: bool, system: str) -> None:
    """Re-sync one customer, whatever the baselines and the conflict policy say.

    Pushes the catalog's current state to the integration (or, with --pull, takes the
    integration's current state into the catalog). The worker applies it in order with the
    customer's other changes; its sync-events show the outcome.
    """
    from application.errors import NotLinked, UnknownSystem
    from application.sync.resync import Direction, resync
    from domain.errors import CustomerNotFound

    direction = Direction.PULL if pull else Direction.PUSH
    try:
        event_id = with_backends(
            lambda c: resync(customer_id, system, direction, c.integrations(), c.uow_factory(), c.publisher(), c.clock()),
            "customers",
        )
    except (CustomerNotFound, NotLinked, UnknownSystem) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"queued: {direction.value} of customer {customer_id} ({system}), event {event_id}; the worker applies it "
        f"(its outcome: GET /api/v1/customers/{customer_id}/sync-events)"
    )
