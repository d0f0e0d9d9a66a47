"""Start and stop what a process needs, in order, and refuse to start on an unready backend.

A backend that cannot be reached yet (the database or the broker still starting, a network blip)
is waited for, one line per attempt, with capped backoff -- unless the process was started with
``--no-wait``, when the first failure stops it with that one line. A backend that answers but is
not ready for us (an un-migrated schema, missing topics, another Stripe account) refuses at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

from adapters.kafka.publisher import KafkaPublisher
from adapters.kafka.subscription import KafkaSubscription
from adapters.postgres.migrations import ensure_migrated
from adapters.postgres.wakeup import PostgresOutboxWakeup
from application.accounts import check_bindings
from application.errors import BackendUnavailable, IntegrationAuthError, RetryableIntegrationError
from application.ports import MessageSource
from application.sync.groups import SyncGroup
from application.sync.waiting import Backoff, keep_trying
from entrypoints.container import Container, subscribe

log = logging.getLogger("custsync")
BIND_RETRY_MAX_DELAY = 30.0
START_RETRY_MAX_DELAY = 30.0
T = TypeVar("T")


class NotReady(RuntimeError):
    """A backend is not ready for this process (un-migrated database, missing topics)."""


def _unreachable(error: Exception) -> bool:
    """A backend or an external system that may answer later (refused credentials will not)."""
    if isinstance(error, IntegrationAuthError):
        return False
    return isinstance(error, BackendUnavailable | RetryableIntegrationError)


async def until_reachable(
    container: Container,
    what: Callable[[], Awaitable[T]],
    *,
    wait: bool = True,
    max_delay: float = START_RETRY_MAX_DELAY,
    stopping: asyncio.Event | None = None,
    doing: str = "",
) -> T:
    """``what()``, again and again while what it needs cannot be reached (one line per attempt,
    prefixed by ``doing``), on the container's clock; with ``wait`` off the first such failure is
    raised; ``stopping`` set meanwhile raises Stopped."""

    def waiting(error: Exception, delay: float, failures: int) -> None:
        log.warning("%s%s; retrying in %.1fs (attempt %d)", doing, error, delay, failures)

    return await keep_trying(
        what,
        clock=container.clock(),
        stopping=stopping or asyncio.Event(),
        backoff=Backoff(cap=max_delay),
        passing=lambda error, _: wait and _unreachable(error),
        waiting=waiting,
    )


@asynccontextmanager
async def running(
    container: Container,
    *,
    wait: bool = True,
    stopping: asyncio.Event | None = None,
    publishing: bool = True,
) -> AsyncIterator[None]:
    """The database checked and its pool closed at the end; the Kafka producer started and flushed
    (unless ``publishing`` is off: a command that only reads). ``stopping`` set while a backend is
    waited for raises Stopped."""
    settings = container.settings()
    async with AsyncExitStack() as stack:
        if settings.storage_backend == "postgres":
            engine = container.engine()
            stack.push_async_callback(engine.dispose)
            wakeup = container.outbox_wakeup()
            assert isinstance(wakeup, PostgresOutboxWakeup)  # what the container selects for storage_backend postgres
            stack.push_async_callback(wakeup.close)
            await until_reachable(container, lambda: ensure_migrated(engine), wait=wait, stopping=stopping)
        if settings.broker_backend == "kafka" and publishing:
            publisher = container.publisher()
            assert isinstance(publisher, KafkaPublisher)  # what the container selects for broker_backend kafka
            await until_reachable(container, publisher.start, wait=wait, stopping=stopping)
            stack.push_async_callback(publisher.stop)
        yield


@asynccontextmanager
async def subscribed(
    container: Container, group: SyncGroup, *, wait: bool = True, stopping: asyncio.Event | None = None
) -> AsyncIterator[MessageSource]:
    """A started subscription of one worker group, left cleanly (uncommitted work is redelivered).
    Raises Stopped if asked to stop while the broker is still out of reach."""
    source = subscribe(container, group)
    if isinstance(source, KafkaSubscription):
        await until_reachable(container, source.start, wait=wait, stopping=stopping)
        try:
            yield source
        finally:
            await source.stop()
    else:
        yield source


async def bind_accounts(container: Container, *, wait: bool = True, required: bool = True) -> None:
    """Make sure of the installation id, then check (or, the first time, record) the account each
    integration's credentials belong to. Another account or mode raises AccountMismatch: the
    process refuses to start. An unreachable system is waited for, one line per attempt -- unless
    ``wait`` is off: then a process that needs the check (the worker, ``required``) stops with
    that line, and one that does not (the API, which never calls Stripe) serves meanwhile."""
    await until_reachable(container, container.identity().id, wait=wait)

    async def check() -> None:
        for binding in await check_bindings(container.integrations(), container.uow_factory(), container.clock()):
            log.info("%s: bound to %s", binding.system, binding.account)

    try:
        await until_reachable(
            container, check, wait=wait, max_delay=BIND_RETRY_MAX_DELAY, doing="cannot check the external account yet: "
        )
    except Exception as exc:
        if wait or required or not _unreachable(exc):
            raise
        log.warning("cannot check the external account now (%s); serving anyway: the worker checks it before it syncs", exc)
