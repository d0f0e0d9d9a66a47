"""Start and stop what a process needs, in order, and refuse to start on an unready backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from adapters.kafka.subscription import KafkaSubscription
from adapters.postgres.migrations import ensure_migrated
from entrypoints.container import Container


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
