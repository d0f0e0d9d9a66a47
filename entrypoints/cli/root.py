"""The ``custsync`` command group and what every command shares: settings read once, the guards
that refuse an unsafe start, and one line (never a traceback) when a backend is not there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import click

from entrypoints.container import Container, build_container
from entrypoints.settings import Settings, SettingsError, load_settings

log = logging.getLogger("custsync")
T = TypeVar("T")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Keep a customer catalog in two-way, real-time sync with Stripe and Salesforce.

    The catalog (PostgreSQL, behind a REST API) is the hub: a change made in it, in Stripe or in
    Salesforce reaches the other two through Kafka. Configuration comes from environment
    variables: every one is listed in .env.example and in the documentation's configuration
    reference (docs/reference/configuration.md).
    """


def read_settings(**overrides: object) -> Settings:
    try:
        loaded = load_settings(None, **overrides)  # the process environment, whatever an override is named
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    from entrypoints.logs import configure

    configure(loaded.log_level, loaded.log_format)
    return loaded


NO_WAIT = click.option(
    "--no-wait",
    is_flag=True,
    help="Exit (one line, status 1) if PostgreSQL, Kafka or an integration cannot be reached, instead of waiting for them.",
)


@contextlib.contextmanager
def one_line() -> Iterator[None]:
    """A backend that is missing, unreachable or refusing stops the command with one line, not a trace."""
    from adapters.kafka.subscription import TopicsMissing
    from adapters.kafka.topics import TopicsNotCreated
    from adapters.postgres.errors import StorageRefused
    from adapters.postgres.migrations import SchemaNotMigrated
    from application.errors import AccountMismatch, BackendUnavailable, IntegrationError, UnprovenBinding
    from entrypoints.runtime import CannotServe

    try:
        yield
    except (
        SchemaNotMigrated,
        StorageRefused,
        TopicsMissing,
        TopicsNotCreated,
        AccountMismatch,
        UnprovenBinding,
        BackendUnavailable,
        CannotServe,
    ) as exc:
        raise click.ClickException(str(exc)) from None
    except IntegrationError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach a backend: {exc}") from None


@contextlib.contextmanager
def quiet(logger: str) -> Iterator[None]:
    """A library's own log lines held back while a command says the same in its one line."""
    library = logging.getLogger(logger)
    level = library.level
    library.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        library.setLevel(level)


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a process or a one-off command in an event loop, failing with one line."""
    with one_line():
        return asyncio.run(work())


def with_backends(work: Callable[[Container], Awaitable[T]], what: str = "dead letters", *, publishing: bool = True) -> T:
    """Run ``work`` once on the configured database and broker, started and stopped as processes do
    (``publishing`` off: work that only reads, which needs no Kafka producer)."""
    from entrypoints.lifecycle import running

    loaded = read_settings()
    if loaded.uses_memory:
        raise click.ClickException(f"DATABASE_URL is not set: {what} live in the database (in `custsync dev`, use the API)")
    container = build_container(loaded)

    async def once() -> T:
        async with running(container, wait=False, publishing=publishing):  # a one-off command says at once what is unreachable
            return await work(container)

    return run(once)


def warn_if_memory(loaded: Settings, command: str) -> None:
    if loaded.uses_memory:
        log.warning(
            "%s is running on the in-memory backend (DATABASE_URL unset): nothing is persisted or shared with "
            "other processes. Use `custsync dev` for a one-process trial.",
            command,
        )


def require_real_integrations(loaded: Settings, command: str) -> None:
    """The in-memory stand-ins would store fake ids in a real catalog: only in memory (every
    enabled integration is checked)."""
    if "salesforce" in loaded.integration_names and loaded.salesforce_backend == "memory":
        if not loaded.uses_memory:
            raise click.ClickException(
                f"SALESFORCE_INSTANCE_URL is not set: {command} refuses to sync a real catalog with the in-memory "
                "Salesforce stand-in (it exists for `custsync dev` only)"
            )
        log.warning("%s: SALESFORCE_INSTANCE_URL is not set: using the in-memory Salesforce stand-in", command)
    if loaded.stripe_backend != "memory" or "stripe" not in loaded.integration_names:
        return
    if not loaded.uses_memory:
        raise click.ClickException(
            f"STRIPE_SECRET_KEY is not set: {command} refuses to sync a real catalog with the in-memory Stripe "
            "stand-in (it exists for `custsync dev` only)"
        )
    log.warning("%s: STRIPE_SECRET_KEY is not set: using the in-memory Stripe stand-in (nothing reaches Stripe)", command)


def require_api_auth(loaded: Settings, command: str, host: str) -> None:
    """Secure by default: a catalog API on real storage (or reachable beyond this machine) needs
    API_TOKEN, unless API_AUTH=none says that something else guards it."""
    if loaded.api_token:
        log.info("%s: every catalog and dead-letter route requires the bearer token (API_TOKEN)", command)
        return
    if loaded.api_auth == "none":
        log.warning(
            "%s: API_AUTH=none: the catalog, dead-letter and replay routes are open to anyone who can reach %s",
            command,
            host,
        )
        return
    if loaded.uses_memory and host in LOOPBACK:
        return  # a first look on this machine only
    where = "on real storage" if not loaded.uses_memory else f"on {host} (beyond this machine)"
    raise click.ClickException(
        f"API_TOKEN is not set: {command} refuses to serve the catalog {where} without authentication. "
        "Set API_TOKEN (e.g. `openssl rand -hex 32`), or API_AUTH=none if a proxy in front authenticates"
    )
