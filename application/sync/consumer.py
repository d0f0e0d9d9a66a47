"""The worker's loop: take deliveries from the sync topics, run the use cases, commit after.

Deliveries of one partition are handled one at a time, in order; a failing one is retried in
place (backoff with jitter) so that it never overtakes itself, then dead-lettered so that it
never blocks its partition for good. Offsets are committed only after the work is durable.

A dead letter is kept in the database (for ``custsync dlq list``/``replay``) and published to
``<topic>.dlq`` (for whoever watches the broker), both before its offset is committed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import Protocol

import msgspec

from application.errors import IntegrationAuthError, IntegrationError
from application.ports import Clock, Delivery, Envelope, MessagePublisher, MessageSource, UnitOfWorkFactory
from domain.messages import UndecodableMessage, dead_letter_topic

log = logging.getLogger(__name__)


class TopicHandler(Protocol):
    async def handle(self, payload: bytes) -> None: ...

    async def give_up(self, payload: bytes, error: str) -> None:
        """Record that this message is going to the dead-letter topic."""


class RetryPolicy(msgspec.Struct, frozen=True):
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    auth_pause: float = 60.0  # credentials refused: pause the partition, never dead-letter

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Full jitter, capped; never sooner than the server asked (Retry-After)."""
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        return max(backoff, min(retry_after or 0.0, self.max_delay))


class SyncConsumer:
    """``uow_factory`` is where dead letters are kept for a replay. Without one (a test of the loop
    alone) they only go to the ``.dlq`` topic; the container always gives one."""

    def __init__(
        self, source: MessageSource, publisher: MessagePublisher, handlers: Mapping[str, TopicHandler],
        clock: Clock, retry: RetryPolicy = RetryPolicy(), batch_size: int = 100, *,
        uow_factory: UnitOfWorkFactory | None = None,
    ) -> None:
        self._source, self._publisher, self._handlers, self._uow_factory = source, publisher, handlers, uow_factory
        self._clock, self._retry, self._batch_size = clock, retry, batch_size

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self.run_once(stopping, timeout=0.5)

    async def run_once(self, stopping: asyncio.Event, timeout: float = 0.0) -> int:
        """Handle one batch; returns how many deliveries were finished and committed."""
        done: list[Delivery] = []
        for delivery in await self._source.fetch(self._batch_size, timeout):
            if not await self._process(delivery, stopping):
                break  # stopping mid-retry: the rest is redelivered to whoever takes over
            done.append(delivery)
        if done:
            await self._source.commit(done)
        return len(done)

    async def _process(self, delivery: Delivery, stopping: asyncio.Event) -> bool:
        envelope = delivery.envelope
        handler = self._handlers.get(envelope.topic)
        if handler is None:
            await self._dead_letter(envelope, f"no handler for topic {envelope.topic}")
            return True
        attempt = 0
        while True:
            attempt += 1
            try:
                await handler.handle(envelope.payload)
                return True
            except UndecodableMessage as exc:
                await self._dead_letter(envelope, str(exc))
                return True
            except IntegrationAuthError as exc:
                log.critical("credentials refused by %s, pausing sync until they are fixed: %s", envelope.topic, exc)
                delay, attempt = self._retry.auth_pause, 0
            except Exception as exc:  # noqa: BLE001 - every failure is retried or dead-lettered
                error = f"{type(exc).__name__}: {exc}"
                permanent = isinstance(exc, IntegrationError) and not exc.retryable
                if permanent or attempt >= self._retry.max_attempts:
                    log.error("dead-lettering %s after %d attempt(s): %s", envelope.event_id, attempt, error)
                    try:
                        await handler.give_up(envelope.payload, error)
                    except Exception:  # noqa: BLE001 - the history note is a courtesy; the letter is what counts
                        log.exception("could not record the dead %s in the sync history", envelope.event_id)
                    await self._dead_letter(envelope, error)
                    return True
                delay = self._retry.delay(attempt, getattr(exc, "retry_after", None))
                log.warning("attempt %d of %s failed, retrying in %.2fs: %s", attempt, envelope.event_id, delay, error)
            if not await self._pause(delay, stopping):
                return False

    async def _pause(self, seconds: float, stopping: asyncio.Event) -> bool:
        """Sleep on the injected clock; False if asked to stop meanwhile."""
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        stopper = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        sleeper.cancel()
        stopper.cancel()
        return not stopping.is_set()

    async def _dead_letter(self, envelope: Envelope, error: str) -> None:
        dead = msgspec.structs.replace(envelope, error=error[:2000])
        # The store first: it is what a replay reads. If the publish below fails, the delivery is
        # not committed, dies again on redelivery and updates the same letter (one per event).
        if self._uow_factory is not None:
            async with self._uow_factory() as uow:
                await uow.dead_letters.add(dead, self._clock.now())
                await uow.commit()
        await self._publisher.publish([msgspec.structs.replace(dead, topic=dead_letter_topic(envelope.topic))])
