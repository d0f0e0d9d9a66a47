"""The ``custsync`` command line."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys

import click
import msgspec

from entrypoints.container import build_container
from entrypoints.settings import Settings, SettingsError, load_settings

log = logging.getLogger("custsync")


def _settings(**overrides: object) -> Settings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    return settings


def _warn_if_memory(settings: Settings, command: str) -> None:
    if settings.uses_memory:
        log.warning(
            "%s is running on the in-memory backend (DATABASE_URL unset): nothing is persisted or shared with "
            "other processes. Use `custsync dev` for a one-process trial.", command,
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Keep a customer catalog and Stripe in two-way sync.

    Configuration comes from environment variables (see README.md and .env.example).
    """


def _run(container_tasks) -> None:
    """Run a long-lived process; a backend that is not ready stops it with one line, not a trace."""
    from adapters.kafka.subscription import TopicsMissing
    from adapters.postgres.migrations import SchemaNotMigrated

    try:
        asyncio.run(container_tasks())
    except (SchemaNotMigrated, TopicsMissing) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach a backend: {exc}") from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
def api(host: str, port: int) -> None:
    """Serve the REST API (catalog CRUD, Stripe webhooks, /health, /docs)."""
    from entrypoints.http.app import create_app
    from entrypoints.runtime import http_task, run_process

    settings = _settings()
    _warn_if_memory(settings, "custsync api")
    container = build_container(settings)
    _run(lambda: run_process(container, http_task(create_app(container), host, port)))


@main.command()
def worker() -> None:
    """Run the sync worker: the outbox relay and the consumer of sync.outbound / sync.inbound."""
    from entrypoints.runtime import run_process, worker_tasks

    settings = _settings()
    _warn_if_memory(settings, "custsync worker")
    container = build_container(settings)
    _run(lambda: run_process(container, *worker_tasks(container)))


@main.command()
def relay() -> None:
    """Run only the outbox relay (the worker runs one too; several may run at once)."""
    from entrypoints.runtime import relay_task, run_process

    container = build_container(_settings())
    _run(lambda: run_process(container, relay_task(container)))


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
    """`migrate`, then `topics`: what a deployment runs once before api and worker start."""
    ctx.invoke(migrate)
    ctx.invoke(topics)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
def dev(host: str, port: int) -> None:
    """Run everything in one in-memory process (nothing is persisted).

    Without STRIPE_SECRET_KEY a fake Stripe stands in, editable under /dev/stripe/customers; with
    it, the real Stripe API (or STRIPE_API_BASE) is used and webhooks must be forwarded to
    /api/v1/webhooks/stripe (e.g. `stripe listen --forward-to localhost:8000/api/v1/webhooks/stripe`).
    """
    from entrypoints.dev import BANNER, REAL_STRIPE_BANNER, webhook_delivery_task
    from entrypoints.http.app import create_app
    from entrypoints.runtime import http_task, run_process, worker_tasks

    settings = _settings()
    fake_stripe = settings.stripe_backend == "memory"
    # Dev always runs in memory; the fake Stripe signs its webhooks with a secret of its own.
    settings = msgspec.structs.replace(
        settings, database_url="memory://", kafka_bootstrap_servers="memory://",
        stripe_webhook_secret=settings.stripe_webhook_secret or (f"whsec_dev_{secrets.token_hex(16)}" if fake_stripe else ""),
    )
    container = build_container(settings)
    click.echo(BANNER.format(host=host, port=port), err=True)
    tasks = [http_task(create_app(container, dev_routes=fake_stripe), host, port), *worker_tasks(container)]
    if fake_stripe:
        tasks.append(webhook_delivery_task(container, container.stripe_customers(), settings.stripe_webhook_secret))
    else:
        secret = "set" if settings.stripe_webhook_secret else "NOT SET: webhooks will be refused"
        click.echo(REAL_STRIPE_BANNER.format(port=port, secret=secret), err=True)
    _run(lambda: run_process(container, *tasks))


if __name__ == "__main__":  # pragma: no cover
    main()
