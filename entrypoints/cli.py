"""The ``custsync`` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import msgspec

from application.sync.dead_letters import DEFAULT_LIMIT, MAX_LIMIT
from domain.dead_letters import DeadLetter
from domain.drift import Finding, FindingKind, MatchBy, ReconcileRun, RunStatus
from entrypoints.container import Container, build_container
from entrypoints.settings import Settings, SettingsError, load_settings

log = logging.getLogger("custsync")
T = TypeVar("T")


def _settings(**overrides: object) -> Settings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    from entrypoints.logs import configure

    configure(settings.log_level, settings.log_format)
    return settings


def _warn_if_memory(settings: Settings, command: str) -> None:
    if settings.uses_memory:
        log.warning(
            "%s is running on the in-memory backend (DATABASE_URL unset): nothing is persisted or shared with "
            "other processes. Use `custsync dev` for a one-process trial.", command,
        )


def _require_real_integrations(settings: Settings, command: str) -> None:
    """The in-memory stand-ins would store fake ids in a real catalog: only in memory (every
    enabled integration is checked)."""
    if "salesforce" in settings.integration_names and settings.salesforce_backend == "memory":
        if not settings.uses_memory:
            raise click.ClickException(
                f"SALESFORCE_INSTANCE_URL is not set: {command} refuses to sync a real catalog with the in-memory "
                "Salesforce stand-in (it exists for `custsync dev` only)"
            )
        log.warning("%s: SALESFORCE_INSTANCE_URL is not set: using the in-memory Salesforce stand-in", command)
    if settings.stripe_backend != "memory" or "stripe" not in settings.integration_names:
        return
    if not settings.uses_memory:
        raise click.ClickException(
            f"STRIPE_SECRET_KEY is not set: {command} refuses to sync a real catalog with the in-memory Stripe "
            "stand-in (it exists for `custsync dev` only)"
        )
    log.warning("%s: STRIPE_SECRET_KEY is not set: using the in-memory Stripe stand-in (nothing reaches Stripe)", command)


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _require_api_auth(settings: Settings, command: str, host: str) -> None:
    """Secure by default: a catalog API on real storage (or reachable beyond this machine) needs
    API_TOKEN, unless API_AUTH=none says that something else guards it."""
    if settings.api_token:
        log.info("%s: every catalog and dead-letter route requires the bearer token (API_TOKEN)", command)
        return
    if settings.api_auth == "none":
        log.warning(
            "%s: API_AUTH=none: the catalog, dead-letter and replay routes are open to anyone who can reach %s",
            command, host,
        )
        return
    if settings.uses_memory and host in LOOPBACK:
        return  # a first look on this machine only
    where = "on real storage" if not settings.uses_memory else f"on {host} (beyond this machine)"
    raise click.ClickException(
        f"API_TOKEN is not set: {command} refuses to serve the catalog {where} without authentication. "
        "Set API_TOKEN (e.g. `openssl rand -hex 32`), or API_AUTH=none if a proxy in front authenticates"
    )


NO_WAIT = click.option(
    "--no-wait", is_flag=True,
    help="Exit (one line, status 1) if PostgreSQL, Kafka or Stripe cannot be reached, instead of waiting for them.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Keep a customer catalog and Stripe in two-way sync.

    Configuration comes from environment variables (see README.md and .env.example).
    """


def _run(container_tasks: Callable[[], Awaitable[T]]) -> T:
    """Run a process or a one-off command; a backend that is not ready stops it with one line, not a trace."""
    from adapters.kafka.subscription import TopicsMissing
    from adapters.postgres.migrations import SchemaNotMigrated
    from application.errors import AccountMismatch, BackendUnavailable, IntegrationError, UnprovenBinding

    try:
        return asyncio.run(container_tasks())
    except (SchemaNotMigrated, TopicsMissing, AccountMismatch, UnprovenBinding, BackendUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    except IntegrationError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach a backend: {exc}") from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64),
    help="Processes serving the port (uvicorn's supervisor restarts one that dies); about one per core.",
)
@NO_WAIT
def api(host: str, port: int, workers: int, no_wait: bool) -> None:
    """Serve the REST API (catalog CRUD, Stripe webhooks, /health, /docs).

    Needs API_TOKEN (or API_AUTH=none). Waits for PostgreSQL and Kafka if they cannot be reached yet.
    """
    settings = _settings()
    _warn_if_memory(settings, "custsync api")
    _require_real_integrations(settings, "custsync api")
    _require_api_auth(settings, "custsync api", host)
    if workers > 1:
        if settings.uses_memory or settings.broker_backend == "memory":
            raise click.ClickException("--workers needs PostgreSQL and Kafka: each process would have its own in-memory catalog")
        from entrypoints.runtime import serve_api_processes

        try:
            started = serve_api_processes(host, port, workers, wait=not no_wait)
        except OSError as exc:
            raise click.ClickException(f"cannot serve HTTP on {host}:{port}: {exc}") from None
        if not started:
            raise click.ClickException("an API worker process could not start (see the log above)")
        return
    from entrypoints.http.app import create_app
    from entrypoints.runtime import http_task, run_process

    container = build_container(settings)
    _run(lambda: run_process(container, http_task(create_app(container), host, port), bind="try", wait=not no_wait))


@main.command()
@NO_WAIT
def worker(no_wait: bool) -> None:
    """Run the sync worker: the outbox relay and the consumer of sync.outbound / sync.inbound.

    Waits for PostgreSQL, Kafka and Stripe if they cannot be reached yet, and waits out their
    outages while it runs.
    """
    from entrypoints.runtime import run_process, worker_tasks

    settings = _settings()
    _warn_if_memory(settings, "custsync worker")
    _require_real_integrations(settings, "custsync worker")
    container = build_container(settings)
    _run(lambda: run_process(container, *worker_tasks(container, wait=not no_wait), bind="wait", wait=not no_wait))


@main.command()
@NO_WAIT
def relay(no_wait: bool) -> None:
    """Run only the outbox relay (the worker runs one too; several may run at once)."""
    from entrypoints.runtime import relay_task, run_process

    container = build_container(_settings())
    _run(lambda: run_process(container, relay_task(container), wait=not no_wait))


@main.command()
def migrate() -> None:
    """Apply the database migrations (Alembic) up to the newest schema."""
    settings = _settings()
    if settings.uses_memory:
        raise click.ClickException("DATABASE_URL is not set: there is no database to migrate")
    from adapters.postgres.migrations import upgrade

    upgrade(settings.database_url)
    click.echo("database migrated", err=True)


@main.command()
def topics() -> None:
    """Create the sync topics and their dead-letter topics (KAFKA_PARTITIONS partitions each)."""
    settings = _settings()
    if settings.broker_backend == "memory":
        raise click.ClickException("KAFKA_BOOTSTRAP_SERVERS is not set: there is no broker to create topics on")
    from adapters.kafka.topics import ensure_topics

    created = asyncio.run(ensure_topics(settings.kafka_bootstrap_servers, settings.kafka_partitions))
    click.echo(f"topics ready ({', '.join(created) or 'all existed'})", err=True)


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """`migrate`, then `topics`, then this installation's id: what a deployment runs once first."""
    ctx.invoke(migrate)
    ctx.invoke(topics)
    from application.accounts import ensure_installation

    installation = _with_backends(lambda c: ensure_installation(c.uow_factory(), c.clock()), "the installation id")
    click.echo(f"installation {installation}", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
def dev(host: str, port: int) -> None:
    """Run everything in one in-memory process (nothing is persisted).

    Without STRIPE_SECRET_KEY a fake Stripe stands in, editable under /dev/stripe/customers; with
    it, the real Stripe API (or STRIPE_API_BASE) is used and webhooks must be forwarded to
    /api/v1/webhooks/stripe (e.g. `stripe listen --forward-to localhost:8000/api/v1/webhooks/stripe`).
    """
    from entrypoints.dev import BANNER, DEV_CATCHUP_INTERVAL, REAL_STRIPE_BANNER, SALESFORCE_BANNER, webhook_delivery_task
    from entrypoints.http.app import create_app
    from entrypoints.runtime import http_task, run_process, worker_tasks

    # Dev syncs with both systems unless INTEGRATIONS says otherwise, and polls every few seconds
    # (Salesforce's changes arrive by polling) unless CATCHUP_INTERVAL says otherwise.
    defaults = {"integrations": "stripe,salesforce", "catchup_interval": DEV_CATCHUP_INTERVAL}
    settings = _settings(**{k: v for k, v in defaults.items() if k.upper() not in os.environ})
    fake_stripe = settings.stripe_backend == "memory"
    # Dev always runs in memory; the fake Stripe signs its webhooks with a secret of its own.
    settings = msgspec.structs.replace(
        settings, database_url="memory://", kafka_bootstrap_servers="memory://",
        stripe_webhook_secret=settings.stripe_webhook_secret or (f"whsec_dev_{secrets.token_hex(16)}" if fake_stripe else ""),
    )
    _require_api_auth(settings, "custsync dev", host)
    container = build_container(settings)
    click.echo(BANNER.format(host=host, port=port), err=True)
    if "salesforce" in settings.integration_names and settings.salesforce_backend == "memory":
        click.echo(SALESFORCE_BANNER.format(host=host, port=port, interval=settings.catchup_interval), err=True)
    tasks = [http_task(create_app(container, dev_routes=True), host, port), *worker_tasks(container)]
    if "stripe" not in settings.integration_names:
        pass
    elif fake_stripe:
        tasks.append(webhook_delivery_task(container, container.stripe_customers(), settings.stripe_webhook_secret))
    else:
        secret = "set" if settings.stripe_webhook_secret else "NOT SET: webhooks will be refused"
        click.echo(REAL_STRIPE_BANNER.format(port=port, secret=secret), err=True)
    _run(lambda: run_process(container, *tasks, bind="wait"))


@main.group()
def dlq() -> None:
    """Inspect and replay dead letters: syncs the worker gave up on.

    They are kept in the database; fix the cause (data, credentials, a bug), then replay them.
    """


def _with_backends(work: Callable[[Container], Awaitable[T]], what: str = "dead letters") -> T:
    """Run ``work`` once on the configured database and broker, started and stopped as processes do."""
    from entrypoints.lifecycle import running

    settings = _settings()
    if settings.uses_memory:
        raise click.ClickException(f"DATABASE_URL is not set: {what} live in the database (in `custsync dev`, use the API)")
    container = build_container(settings)

    async def once() -> T:
        async with running(container, wait=False):  # a one-off command says at once what is unreachable
            return await work(container)

    return _run(once)


@dlq.command("list")
@click.option("--all", "include_replayed", is_flag=True, help="Include the letters already replayed.")
@click.option("--limit", default=DEFAULT_LIMIT, show_default=True, type=click.IntRange(1, MAX_LIMIT), help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="JSON, as GET /api/v1/dead-letters returns it.")
def dlq_list(include_replayed: bool, limit: int, as_json: bool) -> None:
    """List dead letters, newest first.

    Only those waiting for a replay, unless --all. The error is cut to one line here; --json has it whole.
    """
    from application.sync.dead_letters import list_dead_letters

    letters = _with_backends(lambda c: list_dead_letters(c.uow_factory()(), limit, include_replayed))
    if as_json:
        from entrypoints.http.schemas import DeadLetterOut

        click.echo(msgspec.json.encode([DeadLetterOut.of(d) for d in letters]))
    elif letters:
        click.echo(_table(letters))
    else:
        click.echo("no dead letters" if include_replayed else "no dead letters waiting for a replay")


@dlq.command("replay")
@click.option("--id", "ids", multiple=True, type=click.IntRange(min=1), metavar="ID", help="A dead letter to replay (repeatable).")
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter not yet replayed.")
def dlq_replay(ids: tuple[int, ...], replay_all: bool) -> None:
    """Replay dead letters once their cause is fixed.

    Each goes back to the topic it came from, and the worker runs it again. Give --id (one or
    more) or --all. An id that is unknown or already replayed stops the command before anything
    is replayed. A letter that fails again comes back to the list.
    """
    from application.sync.dead_letters import replay_dead_letters
    from domain.errors import DeadLetterNotFound

    if bool(ids) == replay_all:
        raise click.UsageError("give either --id (one or more) or --all")
    try:
        replayed = _with_backends(
            lambda c: replay_dead_letters(None if replay_all else list(ids), c.uow_factory(), c.publisher(), c.clock())
        )
    except DeadLetterNotFound as exc:
        raise click.ClickException(str(exc)) from None
    if replayed:
        click.echo(f"replayed {len(replayed)} dead letter(s): {', '.join(map(str, replayed))}")
    else:
        click.echo("nothing to replay")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON, as GET /api/v1/status returns it.")
def status(as_json: bool) -> None:
    """One screen for on-call: backlog, lag, dead letters, and per integration the last success,
    error rate and last error, customers not in sync, the last catch-up and reconcile."""
    from application.status import read_status
    from entrypoints.status_screen import render

    report = _with_backends(
        lambda c: read_status(c.uow_factory(), c.integrations(), c.consumer_lag(), c.clock()), "status figures"
    )
    click.echo(msgspec.json.encode(report) if as_json else render(report))


@main.command()
@click.option("--system", default="stripe", show_default=True, help="The integration to compare the catalog with.")
@click.option("--dry-run", is_flag=True, help="Report only: change nothing on either side.")
@click.option("--match-by", type=click.Choice(["email"]), help="Link each unlinked catalog customer to the one unlinked record with its email (first sync).")
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

    settings = _settings()
    _require_real_integrations(settings, "custsync reconcile")
    try:
        run, findings = _with_backends(
            lambda c: _reconcile(c, system, dry_run, MatchBy(match_by) if match_by else None, progress), "reconcile runs",
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
        raise click.ClickException(f"reconcile run {run.id} was interrupted in phase {run.phase.value}: run the same command again to resume it")


async def _reconcile(
    c: Container, system: str, dry_run: bool, match_by: MatchBy | None, progress: bool | None
) -> tuple[ReconcileRun, list[Finding]]:
    import signal

    from application.sync.context import SyncContext
    from application.sync.reconcile import Reconciler, start_here
    from entrypoints.lifecycle import bind_accounts
    from entrypoints.runtime import presumed_dead, runner_name

    integrations = c.integrations()
    if system not in integrations:
        raise click.ClickException(f"{system} is not a configured integration ({', '.join(sorted(integrations))})")
    await bind_accounts(c, wait=False, required=True)
    settings = c.settings()
    ctx = SyncContext(c.uow_factory(), c.clock(), settings.conflict_policy, await c.identity().id(), c.account_guard())
    run, resumed = await start_here(
        ctx, system, runner_name("cli"), dry_run=dry_run, match_by=match_by, trigger="cli", presumed_dead=presumed_dead,
    )
    if resumed:
        click.echo(f"resuming reconcile run {run.id} from its checkpoint (phase {run.phase.value})", err=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    bar = _ProgressBar(sys.stderr.isatty() if progress is None else progress, system)
    try:
        run = await Reconciler(run, integrations[system], integrations, ctx, stopping=stopping, progress=bar.update).execute()
    finally:
        bar.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    findings: list[Finding] = []
    async with c.uow_factory()() as uow:
        after = None
        while True:
            page = await uow.reconcile.findings(run.id, after=after, limit=1000)
            findings += page
            if len(page) < 1000:
                break
            after = page[-1].seq
    return run, findings


class _ProgressBar:
    """tqdm on stderr: records listed, then catalog pages compared, phase by phase."""

    PHASES = {"external": "{system}: listing", "missing": "links not listed", "catalog": "unlinked catalog customers",
              "unlinked": "unlinked {system} records", "done": "done"}

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
            (f.kind.value, str(f.customer_id or "-"), f.external_id or "-", ",".join(f.fields) or "-", f.fix.value,
             f.fix_status.value, _short(f.detail or "", 100))
            for f in shown
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        lines.append("")
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows]
        if len(findings) > len(shown):
            lines.append(f"... and {len(findings) - len(shown)} more (--json, or GET /api/v1/reconcile/runs/{run.id}/findings)")
    else:
        lines.append("nothing to do: both sides agree")
    return "\n".join(lines)


@main.command("resync")
@click.argument("customer_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--pull", is_flag=True, help="Take the external record's state into the catalog (default: push the catalog's there).")
@click.option("--system", default="stripe", show_default=True)
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
        event_id = _with_backends(
            lambda c: resync(customer_id, system, direction, c.integrations(), c.uow_factory(), c.publisher(), c.clock()),
            "customers",
        )
    except (CustomerNotFound, NotLinked, UnknownSystem) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"queued: {direction.value} of customer {customer_id} ({system}), event {event_id}; the worker applies it "
               f"(its outcome: GET /api/v1/customers/{customer_id}/sync-events)")


def _account_commands(system: str, credentials: str, account_word: str) -> None:
    """``custsync <system> binding`` and ``custsync <system> rebind``: the same for every integration."""

    @main.group(name=system, help=(
        f"The {system} {account_word} this catalog is bound to.\n\nThe first `custsync api` or `worker` records the "
        f"{account_word} (and its mode) of {credentials}; a later start with credentials of another {account_word} "
        "or mode refuses to run."
    ))
    def group() -> None:
        pass

    @group.command("binding", help=f"Show the {account_word} the catalog is bound to, and the one {credentials} belongs to.")
    def binding() -> None:
        from application.errors import IntegrationError

        async def show(c: Container) -> tuple[object, object]:
            async with c.uow_factory()() as uow:
                bound = await uow.bindings.get(system)
            try:
                actual: object = await getattr(c, system)().account()
            except IntegrationError as exc:
                actual = f"unknown ({exc})"
            return bound, actual

        bound, actual = _with_backends(show, "bindings")
        click.echo(f"bound to:    {bound.account if bound else 'nothing yet (the first api/worker start binds)'}")
        click.echo(f"credentials' {account_word}: {actual}")

    @group.command("rebind", help=(
        f"Bind the catalog to the {account_word} {credentials} belongs to now.\n\nOnly after you have made sure that "
        f"this {account_word} holds the customers the catalog is linked to: links to records another {account_word} "
        "holds break (404), and nothing in the catalog is changed for them."
    ))
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def rebind_command(yes: bool) -> None:
        from application.accounts import rebind

        settings = _settings()
        if system not in settings.integration_names:
            raise click.ClickException(f"{system} is not in INTEGRATIONS ({settings.integrations})")
        _require_real_integrations(settings, f"custsync {system} rebind")
        if not yes:
            click.confirm(f"Bind this catalog to the {account_word} of {credentials}?", abort=True)
        old, new = _with_backends(lambda c: rebind(getattr(c, system)(), c.uow_factory(), c.clock()), "bindings")
        click.echo(f"{system}: bound to {new.account} (was {old.account if old else 'unbound'})")


_account_commands("stripe", "STRIPE_SECRET_KEY", "account")
_account_commands("salesforce", "SALESFORCE_CLIENT_ID", "org")


def _table(letters: list[DeadLetter]) -> str:
    rows = [("ID", "TOPIC", "EVENT ID", "DIED AT (UTC)", "REPLAYED AT (UTC)", "ERROR")]
    rows += [
        (str(d.id), d.topic, d.event_id, _when(d.created_at), _when(d.replayed_at) if d.replayed_at else "-", _short(d.error))
        for d in letters
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(error: str, width: int = 80) -> str:
    line = " ".join(error.split())  # one line, whatever the error held
    return line if len(line) <= width else line[: width - 3] + "..."


if __name__ == "__main__":  # pragma: no cover
    main()
