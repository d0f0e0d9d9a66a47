"""Start and stop what a process needs, in order, and refuse to start on an unready backend."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from adapters.kafka.subscription import KafkaSubscription
from adapters.postgres.migrations import ensure_migrated
from application.accounts import check_bindings
from application.errors import IntegrationAuthError, RetryableIntegrationError
from entrypoints.container import Container

log = logging.getLogger("custsync")
BIND_RETRY_MAX_DELAY = 30.0


class NotReady(RuntimeError):
    """A backend is not ready for this process (un-migrated database, missing topics)."""


@asynccontextmanager
async def running(container: Container) -> AsyncIterator[None]:
    """The database checked and its pool closed at the end; the Kafka producer started and flushed."""
    settings = container.settings()
    async with AsyncExitStack() as stack:
        if settings.storage_backend == "postgres":
            engine = container.engine()
            stack.push_async_callback(engine.dispose)
            stack.push_async_callback(container.outbox_wakeup().close)
            await ensure_migrated(engine)
        if settings.broker_backend == "kafka":
            publisher = container.publisher()
            await publisher.start()
            stack.push_async_callback(publisher.stop)
        yield


@asynccontextmanager
async def subscribed(container: Container) -> AsyncIterator[object]:
    """A started subscription to the sync topics, left cleanly (uncommitted work is redelivered)."""
    source = container.subscription()
    if isinstance(source, KafkaSubscription):
        await source.start()
        try:
            yield source
        finally:
            await source.stop()
    else:
        yield source


async def bind_accounts(container: Container, *, wait: bool = True) -> None:
    """Make sure of the installation id, then check (or, the first time, record) the account each
    integration's credentials belong to. Another account or mode raises AccountMismatch: the
    process refuses to start. An unreachable system is waited for, one line per attempt -- unless
    ``wait`` is off (the API, which never calls Stripe: it serves meanwhile; the worker checks)."""
    await container.identity().id()
    delay = 1.0
    while True:
        try:
            for binding in await check_bindings(container.integrations(), container.uow_factory(), container.clock()):
                log.info("%s: bound to %s", binding.system, binding.account)
            return
        except IntegrationAuthError:
            raise
        except RetryableIntegrationError as exc:
            if not wait:
                log.warning("cannot check the external account now (%s); serving anyway: the worker checks it before it syncs", exc)
                return
            log.warning("cannot check the external account yet (%s); retrying in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BIND_RETRY_MAX_DELAY)
