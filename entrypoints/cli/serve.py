"""The long-running commands: ``api``, ``worker``, ``relay`` and ``dev``."""

from __future__ import annotations

import os
import secrets

import click
import msgspec

from entrypoints.cli.root import NO_WAIT, main, read_settings, require_api_auth, require_real_integrations, run, warn_if_memory
from entrypoints.container import build_container


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes serving the port (uvicorn's supervisor restarts one that dies); about one per core.",
)
@NO_WAIT
def api(host: str, port: int, workers: int, no_wait: bool) -> None:
    """Serve the REST API (the catalog, signed webhooks, /health, /ready, /metrics, /docs).

    Needs API_TOKEN (or API_AUTH=none). Waits for PostgreSQL and Kafka if they cannot be reached yet.
    """
    settings = read_settings()
    warn_if_memory(settings, "custsync api")
    require_real_integrations(settings, "custsync api")
    require_api_auth(settings, "custsync api", host)
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
    run(lambda: run_process(container, http_task(create_app(container), host, port), bind="try", wait=not no_wait))


@main.command()
@NO_WAIT
def worker(no_wait: bool) -> None:
    """Run the sync worker: the outbox relay, the consumers of sync.outbound (one group per
    integration) and sync.inbound, catch-up polling, scheduled reconcile runs and retention.

    Waits for PostgreSQL, Kafka and the integrations if they cannot be reached yet, and waits out their
    outages while it runs.
    """
    from entrypoints.runtime import run_process, worker_tasks

    settings = read_settings()
    warn_if_memory(settings, "custsync worker")
    require_real_integrations(settings, "custsync worker")
    container = build_container(settings)
    run(lambda: run_process(container, *worker_tasks(container, wait=not no_wait), bind="wait", wait=not no_wait))


@main.command()
@NO_WAIT
def relay(no_wait: bool) -> None:
    """Run only the outbox relay (the worker runs one too; several may run at once)."""
    from entrypoints.runtime import relay_task, run_process

    container = build_container(read_settings())
    run(lambda: run_process(container, relay_task(container), wait=not no_wait))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
def dev(host: str, port: int) -> None:
    """Run everything in one in-memory process, for a first look (nothing is persisted).

    The API, the worker and stand-ins for Stripe and a Salesforce org, editable under
    /dev/stripe/customers and /dev/salesforce/contacts. With STRIPE_SECRET_KEY the real Stripe API
    (or STRIPE_API_BASE) is used instead, and its webhooks must be forwarded to
    /api/v1/webhooks/stripe (e.g. `stripe listen --forward-to localhost:8000/api/v1/webhooks/stripe`).
    """
    from entrypoints.dev import BANNER, DEV_CATCHUP_INTERVAL, REAL_STRIPE_BANNER, SALESFORCE_BANNER, webhook_delivery_task
    from entrypoints.http.app import create_app
    from entrypoints.runtime import http_task, run_process, worker_tasks

    # Dev syncs with both systems unless INTEGRATIONS says otherwise, and polls every few seconds
    # (Salesforce's changes arrive by polling) unless CATCHUP_INTERVAL says otherwise.
    defaults = {"integrations": "stripe,salesforce", "catchup_interval": DEV_CATCHUP_INTERVAL}
    settings = read_settings(**{k: v for k, v in defaults.items() if k.upper() not in os.environ})
    fake_stripe = settings.stripe_backend == "memory"
    # Dev always runs in memory; the fake Stripe signs its webhooks with a secret of its own.
    settings = msgspec.structs.replace(
        settings,
        database_url="memory://",
        kafka_bootstrap_servers="memory://",
        stripe_webhook_secret=settings.stripe_webhook_secret or (f"whsec_dev_{secrets.token_hex(16)}" if fake_stripe else ""),
    )
    require_api_auth(settings, "custsync dev", host)
    container = build_container(settings)
    click.echo(BANNER.format(host=host, port=port), err=True)
    if "salesforce" in settings.integration_names and settings.salesforce_backend == "memory":
        click.echo(SALESFORCE_BANNER.format(host=host, port=port, interval=settings.catchup_interval), err=True)
    choose = "--port, or `make dev PORT=...`"
    tasks = [http_task(create_app(container, dev_routes=True), host, port, choose=choose), *worker_tasks(container)]
    if "stripe" in settings.integration_names and fake_stripe:
        tasks.append(webhook_delivery_task(container, container.stripe_customers(), settings.stripe_webhook_secret))
    elif "stripe" in settings.integration_names:
        secret = "set" if settings.stripe_webhook_secret else "NOT SET: webhooks will be refused"
        click.echo(REAL_STRIPE_BANNER.format(port=port, secret=secret), err=True)
    run(lambda: run_process(container, *tasks, bind="wait"))
