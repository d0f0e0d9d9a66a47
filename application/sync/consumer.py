"""The worker's loop: take deliveries from the sync topics, run the use cases, commit after.

Every failure falls in one of three kinds, and only one of them ever dead-letters:

* **transient** -- an external system rate-limits, times out or answers 5xx, or the database or
  the broker is unavailable (``RetryableIntegrationError``, ``BackendUnavailable``): retried with
  capped, jittered backoff *for as long as it lasts*. Refused credentials pause longer.
* **permanent** -- a definite refusal (``PermanentIntegrationError``) or an undecodable message:
  dead-lettered at once, so that it never blocks its partition.
* **unexpected** -- anything else (a bug, not an outage): retried ``max_attempts`` times, then
  dead-lettered, so that one poison message cannot stop its partition for good.

Deliveries wait in *lanes*, one per key (a customer, an external record), each handled strictly
in offset order; lanes run concurrently (``concurrency`` deliveries at most, across partitions),
so a key that waits (its delivery in backoff) holds up only itself. Offsets are committed only
after the work is durable, per partition up to the lowest delivery not finished yet. A partition
holding ``max_buffered`` uncommitted deliveries is paused at the source, and the loop goes on
fetching (which keeps this member in its consumer group) instead of sleeping.

A dead letter is kept in the database (for ``custsync dlq list``/``replay``) and published to
``<topic>.dlq`` (for whoever watches the broker), both before its offset is committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import Enum
from typing import Protocol, runtime_checkable

import msgspec

from application.correlation import bound
from application.errors import BackendUnavailable, IntegrationAuthError, IntegrationError
from application.ports import (
    Clock,
    Delivery,
    Envelope,
    MessagePublisher,
    MessageSource,
    Partition,
    SyncMetrics,
    UnitOfWorkFactory,
)
from application.sync.waiting import Backoff, Stopped, keep_trying, sleep_unless_stopped
from domain.messages import UndecodableMessage, dead_letter_topic
from domain.sync import Handled

log = logging.getLogger(__name__)


class TopicHandler(Protocol):
    async def handle(self, payload: bytes) -> Sequence[Handled]:
        """What the delivery came to at each system it concerned (counted, never acted on)."""

    async def give_up(self, payload: bytes, error: str) -> None:
        """Record that this message is going to the dead-letter topic."""


class RetryPolicy(msgspec.Struct, frozen=True):
    max_attempts: int = 5  # for an unexpected error (a bug): then it is dead-lettered
    base_delay: float = 0.5
    max_delay: float = 30.0
    auth_pause: float = 60.0  # credentials refused: pause the partition, never dead-letter

    @property
    def backoff(self) -> Backoff:
        return Backoff(base=self.base_delay, cap=self.max_delay)


DEFAULT_RETRY = RetryPolicy()


class Failure(Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNEXPECTED = "unexpected"


def classify(error: BaseException) -> Failure:
    if isinstance(error, UndecodableMessage):
        return Failure.PERMANENT
    if isinstance(error, BackendUnavailable):
        return Failure.TRANSIENT
    if isinstance(error, IntegrationError):
        return Failure.TRANSIENT if error.retryable else Failure.PERMANENT
    return Failure.UNEXPECTED


def describe(error: BaseException) -> str:
    if isinstance(error, UndecodableMessage):
        return str(error)  # says what was wrong with the bytes; there is nothing else to name
    return f"{type(error).__name__}: {error}"


@runtime_checkable
class Coalescing(Protocol):
    """A handler whose work is state-based may let a later message stand for an earlier one of
    the same key (``sync.outbound``: a burst of edits to one customer costs one push)."""

    def supersedes(self, later: bytes, earlier: bytes) -> bool: ...


class _OffsetBook:
    """The offsets of one partition accepted here and not yet committed, in offset order.

    Deliveries of one partition finish out of order (different keys run concurrently); the commit
    point only ever moves up to the lowest offset not finished yet, so a crash redelivers every
    delivery whose work may not be durable. After a rebalance the source starts again from the
    last committed offset: an offset accepted here already is not taken twice.
    """

    def __init__(self, partition: Partition) -> None:
        self.partition = partition
        self.order: deque[Delivery] = deque()  # accepted, not committed, by offset
        self.finished: set[int] = set()  # of those, the offsets finished
        self.highest = -1  # the highest offset ever accepted here
        self.committable: Delivery | None = None  # everything up to it is finished: commit it
        self.uncommitted = 0  # how many finished deliveries the commit of ``committable`` covers

    def accept(self, delivery: Delivery) -> bool:
        if delivery.offset <= self.highest:
            return False
        self.highest = delivery.offset
        self.order.append(delivery)
        return True

    def finish(self, delivery: Delivery) -> None:
        self.finished.add(delivery.offset)
        while self.order and self.order[0].offset in self.finished:
            done = self.order.popleft()
            self.finished.discard(done.offset)
            self.committable, self.uncommitted = done, self.uncommitted + 1

    def committed(self, delivery: Delivery) -> int:
        """The commit of ``delivery`` went through: how many finished deliveries it covered."""
        if self.committable is not delivery:  # overtaken by a newer one meanwhile: commit that next
            return 0
        covered, self.committable, self.uncommitted = self.uncommitted, None, 0
        return covered


class _Lane:
    """One key's deliveries (one customer, one external record), handled one at a time in order."""

    def __init__(self, topic: str, key: str) -> None:
        self.topic, self.key = topic, key
        self.queue: deque[tuple[Delivery, _OffsetBook]] = deque()
        self.task: asyncio.Task[None] | None = None
        self.in_hand: tuple[Delivery, _OffsetBook] | None = None  # the delivery being handled, and its partition's log
        self.waiting: str | None = None  # the error it is waiting out, while it waits

    @property
    def partition(self) -> Partition:
        return self.in_hand[1].partition if self.in_hand is not None else (self.topic, -1)

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()


class SyncConsumer:
    """``uow_factory`` is where dead letters are kept for a replay. Without one (a test of the loop
    alone) they only go to the ``.dlq`` topic; the container always gives one.

    Deliveries of different keys run concurrently, ``concurrency`` attempts at most (within a
    partition and across partitions); one key's deliveries run strictly in offset order. A
    delivery waiting out a failure keeps its key's place but not a slot: one key's outage holds
    up that key only (and, once its partition's uncommitted deliveries reach ``max_buffered``,
    that partition is paused at the source, so that memory and redelivery after a crash stay
    bounded).
    """

    def __init__(
        self,
        source: MessageSource,
        publisher: MessagePublisher,
        handlers: Mapping[str, TopicHandler],
        clock: Clock,
        retry: RetryPolicy = DEFAULT_RETRY,
        batch_size: int = 100,
        *,
        uow_factory: UnitOfWorkFactory | None = None,
        max_buffered: int = 200,
        concurrency: int = 32,
        metrics: SyncMetrics | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._metrics = metrics or _Uncounted()
        self._source, self._publisher, self._handlers, self._uow_factory = source, publisher, handlers, uow_factory
        self._clock, self._retry, self._batch_size, self._max_buffered = clock, retry, batch_size, max_buffered
        self._slots = asyncio.Semaphore(concurrency)
        self._partitions: dict[Partition, _OffsetBook] = {}
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._paused: set[Partition] = set()
        self._fetch_failures = 0
        self.coalesced = 0  # deliveries a later one of the same key stood for (not handled on their own)

    # -- the loop ---------------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Until ``stopping``: fetch, hand to the lanes, commit what they finished. Then let every
        lane finish the delivery in hand and commit once more."""
        while not stopping.is_set():
            self._dispatch(await self._fetch(stopping, timeout=0.5), stopping)
            self._pause_full_partitions()
            await self._commit()
        await self._settle_lanes()
        await self._commit()

    async def run_once(self, stopping: asyncio.Event, timeout: float = 0.0) -> int:
        """Handle one batch to the end (or until ``stopping``) and commit; returns how many
        deliveries were finished and committed."""
        self._dispatch(await self._fetch(stopping, timeout), stopping)
        await self._settle_lanes()
        return await self._commit()

    def waiting(self) -> dict[Partition, str]:
        """The partitions with a delivery waiting out a failure, with the error (for status and tests)."""
        return {lane.partition: lane.waiting for lane in self._lanes.values() if lane.waiting is not None}

    async def _fetch(self, stopping: asyncio.Event, timeout: float) -> list[Delivery]:
        try:
            deliveries = await self._source.fetch(self._batch_size, timeout)
        except Exception as exc:
            self._fetch_failures += 1
            delay = self._retry.backoff.delay(self._fetch_failures)
            log.warning("cannot fetch from the broker (%s); retrying in %.1fs", describe(exc), delay)
            await self._pause(delay, stopping)
            return []
        self._fetch_failures = 0
        return deliveries

    def _dispatch(self, deliveries: Sequence[Delivery], stopping: asyncio.Event) -> None:
        self._forget_revoked()
        for delivery in deliveries:
            partition = (delivery.envelope.topic, delivery.partition)
            book = self._partitions.get(partition)
            if book is None:
                book = self._partitions[partition] = _OffsetBook(partition)
            if not book.accept(delivery):
                continue
            key = (delivery.envelope.topic, delivery.envelope.key)
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane(*key)
            lane.queue.append((delivery, book))
            if not lane.busy:
                lane.task = asyncio.create_task(self._drain(lane, stopping), name=f"lane {key}")

    def _forget_revoked(self) -> None:
        """A partition that went to another member: what is queued of it is theirs now (what is in
        hand finishes; its new owner, or this member if it gets it back, starts again from the
        last committed offset)."""
        assigned = self._source.assignment()
        revoked = {p: book for p, book in self._partitions.items() if p not in assigned}
        for partition in revoked:
            del self._partitions[partition]
        if revoked:
            gone = set(map(id, revoked.values()))
            for lane in self._lanes.values():
                lane.queue = deque(item for item in lane.queue if id(item[1]) not in gone)
        self._paused &= assigned  # a partition assigned again starts unpaused

    def _pause_full_partitions(self) -> None:
        """Pause the partitions holding ``max_buffered`` uncommitted deliveries; resume the rest.
        Told every turn, not only on changes: a rebalance gives a partition back unpaused."""
        assigned = self._source.assignment()
        full = {p for p, book in self._partitions.items() if len(book.order) >= self._max_buffered} & assigned
        self._source.pause(full)
        self._source.resume(assigned - full)
        if pause := full - self._paused:
            log.info("paused %s until their work can go on", sorted(pause))
        if resume := self._paused - full:
            log.info("resumed %s", sorted(resume))
        self._paused = full

    async def _settle_lanes(self) -> None:
        busy = [lane.task for lane in self._lanes.values() if lane.task is not None and lane.busy]
        if busy:
            await asyncio.gather(*busy)

    async def _commit(self) -> int:
        """Commit each partition up to its lowest unfinished delivery; returns how many finished
        deliveries the commit covered."""
        books = [book for book in self._partitions.values() if book.committable is not None]
        if not books:
            return 0
        done = [book.committable for book in books if book.committable is not None]
        try:
            await self._source.commit(done)
        except Exception as exc:
            log.warning("cannot commit offsets now (%s); they will be committed later", describe(exc))
            return 0
        return sum(book.committed(delivery) for book, delivery in zip(books, done, strict=True))

    # -- one lane ---------------------------------------------------------------------------------

    async def _drain(self, lane: _Lane, stopping: asyncio.Event) -> None:
        try:
            while lane.queue and not stopping.is_set():
                delivery, book = lane.in_hand = self._next(lane)
                try:
                    await self._process(delivery, lane, stopping)
                except Stopped:
                    return  # uncommitted: delivered again to whoever takes the partition
                finally:
                    lane.in_hand, lane.waiting = None, None
                book.finish(delivery)
        finally:
            if not lane.queue and self._lanes.get((lane.topic, lane.key)) is lane:
                del self._lanes[(lane.topic, lane.key)]

    def _next(self, lane: _Lane) -> tuple[Delivery, _OffsetBook]:
        """The lane's next delivery; with a coalescing handler, the last of a run that each later
        one supersedes (the ones it stands for are finished, not handled)."""
        delivery, book = lane.queue.popleft()
        handler = self._handlers.get(lane.topic)
        supersedes = handler.supersedes if isinstance(handler, Coalescing) else None
        while supersedes is not None and lane.queue and supersedes(lane.queue[0][0].envelope.payload, delivery.envelope.payload):
            book.finish(delivery)
            self.coalesced += 1
            delivery, book = lane.queue.popleft()
        return delivery, book

    async def _process(self, delivery: Delivery, lane: _Lane, stopping: asyncio.Event) -> None:
        envelope = delivery.envelope
        handler = self._handlers.get(envelope.topic)
        if handler is None:
            await self._bury(None, envelope, f"no handler for topic {envelope.topic}", lane, stopping)
            return
        handled: list[Handled] = []

        async def work() -> None:
            handled[:] = await handler.handle(envelope.payload) or ()

        with bound(topic=envelope.topic, partition=delivery.partition, offset=delivery.offset):
            failed = await self._until_done(work, envelope, lane, stopping, retry_unexpected=True)
            for one in handled:
                self._metrics.handled(envelope.topic, one)
        if failed is not None:
            error, readable = failed
            await self._bury(handler if readable else None, envelope, error, lane, stopping)

    async def _until_done(
        self,
        work: Callable[[], Awaitable[None]],
        envelope: Envelope,
        lane: _Lane,
        stopping: asyncio.Event,
        *,
        retry_unexpected: bool,
    ) -> tuple[str, bool] | None:
        """Run ``work`` until it succeeds (None) or fails in a way that must be dead-lettered (the
        error, and whether the message itself is readable). Transient failures are waited out
        however long they last; refused credentials pause longer; an unexpected error (a bug) is
        tried ``max_attempts`` times. A stop, or the partition gone to another member, raises
        Stopped: the delivery stays uncommitted for whoever takes it."""
        where = f"{envelope.event_id} ({lane.partition[0]}:{lane.partition[1]})"
        unexpected = 0

        async def attempt() -> None:
            # A slot per attempt, not per delivery: a key waiting out a failure holds up only
            # itself, never the other keys' share of the concurrency.
            async with self._slots:
                await work()

        def passing(error: Exception, failures: int) -> bool:
            nonlocal unexpected
            kind = classify(error)
            if kind is Failure.UNEXPECTED:
                unexpected += 1
                if retry_unexpected and unexpected >= self._retry.max_attempts:
                    return False
                log.warning("attempt %d of %s failed unexpectedly: %s", failures, where, describe(error), exc_info=error)
            return kind is not Failure.PERMANENT

        def waiting(error: Exception, delay: float, failures: int) -> None:
            kind, text = classify(error), describe(error)
            if isinstance(error, IntegrationAuthError):
                log.critical("credentials refused, pausing %s until they are fixed: %s", where, text)
            elif kind is Failure.TRANSIENT:
                log.warning("%s waits %.1fs (attempt %d): %s", where, delay, failures, text)
            lane.waiting = text
            self._metrics.retried(envelope.topic, kind.value)

        try:
            await keep_trying(
                attempt,
                clock=self._clock,
                stopping=stopping,
                backoff=self._retry.backoff,
                passing=passing,
                pause=lambda error: self._retry.auth_pause if isinstance(error, IntegrationAuthError) else None,
                waiting=waiting,
                still_wanted=lambda: self._still_ours(lane),
            )
        except Stopped:
            raise
        except Exception as error:
            text = describe(error)
            if classify(error) is Failure.PERMANENT:
                log.error("dead-lettering %s: %s", where, text)
                return text, not isinstance(error, UndecodableMessage)
            log.error("dead-lettering %s after %d attempt(s): %s", where, unexpected, text)
            return text, True
        return None

    async def _bury(
        self, handler: TopicHandler | None, envelope: Envelope, error: str, lane: _Lane, stopping: asyncio.Event
    ) -> None:
        """Record the death in the history (a courtesy), then keep and publish the letter (what
        counts). Waits out an unavailable database or broker like any other transient failure."""
        if handler is not None:

            async def note() -> None:
                try:
                    await handler.give_up(envelope.payload, error)
                except BackendUnavailable:
                    raise
                except Exception:
                    log.exception("could not record the dead %s in the sync history", envelope.event_id)

            await self._until_done(note, envelope, lane, stopping, retry_unexpected=False)
        # A letter that cannot be stored for a reason other than an outage is a bug here; it keeps
        # its partition waiting (loudly) rather than losing the message.
        await self._until_done(lambda: self._dead_letter(envelope, error), envelope, lane, stopping, retry_unexpected=False)

    def _still_ours(self, lane: _Lane) -> bool:
        """Whether the partition of the delivery in hand is still this member's (as it was when
        the delivery came): once it went to another member, that member handles the key, and this
        one stops retrying it (uncommitted here, it is theirs to redeliver)."""
        if lane.in_hand is None:
            return True
        book = lane.in_hand[1]
        return self._partitions.get(book.partition) is book

    async def _pause(self, seconds: float, stopping: asyncio.Event) -> bool:
        return await sleep_unless_stopped(self._clock, seconds, stopping)

    async def _dead_letter(self, envelope: Envelope, error: str) -> None:
        # Any record can die here, even one we did not write: its text must be storable (no NUL,
        # bounded), or the letter could never be kept and its partition would wait for good.
        dead = msgspec.structs.replace(
            envelope,
            key=_storable(envelope.key, 500),
            event_id=_storable(envelope.event_id, 500),
            error=_storable(error, 2000),
        )
        # The store first: it is what a replay reads. If the publish below fails, the delivery is
        # not committed, dies again on redelivery and updates the same letter (one per event).
        if self._uow_factory is not None:
            async with self._uow_factory() as uow:
                await uow.dead_letters.add(dead, self._clock.now())
                await uow.commit()
        await self._publisher.publish([msgspec.structs.replace(dead, topic=dead_letter_topic(envelope.topic))])
        self._metrics.dead_lettered(envelope.topic)


class _Uncounted:
    """No metrics (a test of the loop alone); the container always gives some."""

    def handled(self, topic: str, handled: Handled) -> None: ...
    def retried(self, topic: str, failure: str) -> None: ...
    def dead_lettered(self, topic: str) -> None: ...


def _storable(text: str, limit: int) -> str:
    return text.replace("\x00", "\\x00").encode("utf-8", "replace").decode("utf-8")[:limit]
