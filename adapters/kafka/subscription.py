"""A consumer-group subscription to the sync topics, with offsets committed only when told.

Kafka's delivery is at least once here by design: a message fetched but not committed (a crash,
a stop mid-batch, a partition taken away by a rebalance) is delivered again, to this member or to
the one that now owns its partition; the handlers are idempotent on ``event_id``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from adapters.kafka.publisher import ERROR_HEADER, EVENT_ID_HEADER, broker_unavailable
from application.errors import BrokerUnavailable
from application.ports import Delivery, Envelope

log = logging.getLogger(__name__)


class TopicsMissing(LookupError):
    """The subscribed topics do not exist (the broker does not create them on demand)."""


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def to_delivery(record: ConsumerRecord[bytes, bytes]) -> Delivery:
    """Any record becomes a Delivery, even one we did not write (no key, no headers): the consumer
    must be able to dead-letter it rather than crash on it and block its partition."""
    headers = dict(record.headers or ())
    position = f"{record.topic}:{record.partition}:{record.offset}"
    envelope = Envelope(
        topic=record.topic,
        key=_text(record.key) or "",
        event_id=_text(headers.get(EVENT_ID_HEADER)) or position,
        payload=record.value if record.value is not None else b"",
        error=_text(headers.get(ERROR_HEADER)),
    )
    return Delivery(envelope, record.partition, record.offset)


class _LogRebalances(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types: its base class is Any
    def __init__(self, group_id: str) -> None:
        self._group_id = group_id

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            log.info("group %s: partitions revoked %s", self._group_id, sorted(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("group %s: partitions assigned %s", self._group_id, sorted(assigned))


class KafkaSubscription:
    """One member of consumer group ``group_id``; a new member resumes from the committed offsets.

    ``max_poll_interval_ms`` bounds the time between two fetches: a member that spends longer on
    one batch (retries with backoff) is taken out of the group and its partitions reassigned.
    ``options`` go to AIOKafkaConsumer as they are (TLS/SASL settings, heartbeat, timeouts).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        group_id: str,
        *,
        client_id: str = "custsync-worker",
        max_poll_interval_ms: int = 300_000,
        commit_timeout: float = 10.0,
        **options: Any,
    ) -> None:
        self._topics, self._group_id, self._commit_timeout = list(topics), group_id, commit_timeout
        self._config = dict(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=max_poll_interval_ms,
            **options,
        )
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Connect and subscribe; the group assigns partitions in the background (the first fetch
        waits for them). Raises TopicsMissing at once instead of waiting forever for them."""
        # Built here, not in __init__: aiokafka binds to the running loop on construction.
        consumer = AIOKafkaConsumer(**self._config)
        try:
            await consumer.start()
            missing = sorted(set(self._topics) - await consumer.topics())
            if missing:
                raise TopicsMissing(
                    f"Kafka topics {missing} do not exist; create them first: `custsync topics` (or `custsync init`)"
                )
            consumer.subscribe(self._topics, listener=_LogRebalances(self._group_id))
        except BaseException as exc:
            await consumer.stop()
            if isinstance(exc, KafkaError):
                raise BrokerUnavailable(f"cannot reach the broker at {self._config['bootstrap_servers']}: {exc}") from exc
            raise
        self._consumer = consumer

    async def stop(self) -> None:
        """Leave the group (its partitions move at once to the other members); safe to call twice.
        Nothing is committed here: what was fetched and not committed will be delivered again."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    def assignment(self) -> set[tuple[str, int]]:
        """The (topic, partition) pairs this member owns now (empty while the group rebalances)."""
        return {(tp.topic, tp.partition) for tp in self._started().assignment()}

    def pause(self, partitions: set[tuple[str, int]]) -> None:
        """Fetch nothing more from these until resumed. The member stays in its group: heartbeats
        go on in the background and fetching the other partitions counts as polling."""
        consumer = self._started()
        owned = consumer.assignment()
        consumer.pause(*(tp for tp in (TopicPartition(t, p) for t, p in partitions) if tp in owned))

    def resume(self, partitions: set[tuple[str, int]]) -> None:
        consumer = self._started()
        owned = consumer.assignment()
        consumer.resume(*(tp for tp in (TopicPartition(t, p) for t, p in partitions) if tp in owned))

    async def fetch(self, max_messages: int, timeout: float) -> list[Delivery]:
        """Up to ``max_messages``, in offset order within each partition; waits up to ``timeout``
        seconds when none is buffered. (A broker that is down is reconnected to in the
        background: meanwhile this returns nothing.)"""
        if max_messages < 1:
            return []
        try:
            # Bounded: while the group rebalances (a member joined or left, the coordinator is
            # away) getmany first waits for the new assignment, whatever timeout_ms says; the
            # caller must get back to its own work (commits, pauses, a stop) meanwhile.
            batches = await asyncio.wait_for(
                self._started().getmany(timeout_ms=max(0, int(timeout * 1000)), max_records=max_messages), timeout + 1.0
            )
        except TimeoutError:
            return []
        except KafkaError as exc:
            raise broker_unavailable(exc) from exc
        return [to_delivery(record) for records in batches.values() for record in records]

    async def commit(self, deliveries: Sequence[Delivery]) -> None:
        consumer = self._started()
        offsets: dict[TopicPartition, int] = {}
        for d in deliveries:
            tp = TopicPartition(d.envelope.topic, d.partition)
            offsets[tp] = max(offsets.get(tp, 0), d.offset + 1)
        # A rebalance may have moved some partitions away since the fetch. Their new owner starts
        # from the last committed offset and redelivers; committing for them now would be refused.
        owned = consumer.assignment()
        lost = sorted(tp for tp in offsets if tp not in owned)
        if lost:
            log.warning("group %s: not committing %s, no longer assigned here (they will be redelivered)", self._group_id, lost)
        offsets = {tp: offset for tp, offset in offsets.items() if tp in owned}
        if not offsets:
            return
        try:
            # Bounded: while the group coordinator is unreachable aiokafka would wait for it.
            await asyncio.wait_for(consumer.commit(offsets), self._commit_timeout)
        except (CommitFailedError, IllegalStateError) as exc:
            # This member was dropped from the group (a batch longer than max_poll_interval_ms, or a
            # rebalance after the check above) while aiokafka still lists the old assignment.
            log.warning(
                "group %s: commit of %s refused after a rebalance (they will be redelivered): %s",
                self._group_id,
                sorted(offsets),
                type(exc).__name__,
            )
        except (KafkaError, TimeoutError) as exc:
            raise broker_unavailable(exc) from exc

    def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("KafkaSubscription used before start()")
        return self._consumer
