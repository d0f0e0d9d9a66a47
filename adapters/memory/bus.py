"""An in-memory message broker with Kafka's semantics where they matter: keyed partitions that
keep order, consumer groups with committed offsets, and redelivery of whatever was not committed."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections import defaultdict
from collections.abc import Sequence

from adapters.memory.database import InMemoryDatabase
from application.ports import Delivery, Envelope
from application.sync.groups import SyncGroup


class InMemoryBroker:
    def __init__(self, partitions: int = 3) -> None:
        self.partitions = partitions
        self.logs: dict[tuple[str, int], list[Envelope]] = defaultdict(list)
        self.committed: dict[tuple[str, str, int], int] = defaultdict(int)  # (group, topic, partition) -> next offset
        self._appended = asyncio.Condition()

    def partition_for(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self.partitions

    async def append(self, envelopes: Sequence[Envelope]) -> None:
        async with self._appended:
            for envelope in envelopes:
                self.logs[(envelope.topic, self.partition_for(envelope.key))].append(envelope)
            self._appended.notify_all()

    def messages(self, topic: str) -> list[Envelope]:
        """Every message on ``topic``, partition by partition (for tests and the DLQ view)."""
        return [e for p in range(self.partitions) for e in self.logs.get((topic, p), [])]

    async def wait_for_append(self, timeout: float) -> None:
        async with self._appended:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._appended.wait(), timeout)


class InMemoryPublisher:
    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        await self._broker.append(envelopes)

    async def check(self, topics: Sequence[str], timeout: float) -> None:
        """Readiness: the in-memory broker is always there."""


class InMemorySubscription:
    """One consumer of a group; a new one starts from the group's committed offsets (a restart)."""

    def __init__(self, broker: InMemoryBroker, topics: Sequence[str], group_id: str = "custsync-worker") -> None:
        self._broker, self._topics, self._group = broker, list(topics), group_id
        self._position = {(t, p): broker.committed[(group_id, t, p)] for t in self._topics for p in range(broker.partitions)}
        self.paused: set[tuple[str, int]] = set()

    def assignment(self) -> set[tuple[str, int]]:
        return set(self._position)  # the only member of its group: every partition

    def pause(self, partitions: set[tuple[str, int]]) -> None:
        self.paused |= partitions

    def resume(self, partitions: set[tuple[str, int]]) -> None:
        self.paused -= partitions

    def _available(self, limit: int) -> list[Delivery]:
        out: list[Delivery] = []
        for (topic, partition), offset in self._position.items():
            if (topic, partition) in self.paused:
                continue
            log = self._broker.logs.get((topic, partition), [])
            for o in range(offset, len(log)):
                if len(out) >= limit:
                    return out
                out.append(Delivery(log[o], partition, o))
        return out

    async def fetch(self, max_messages: int, timeout: float) -> list[Delivery]:
        batch = self._available(max_messages)
        if not batch and timeout > 0:
            await self._broker.wait_for_append(timeout)
            batch = self._available(max_messages)
        for d in batch:
            self._position[(d.envelope.topic, d.partition)] = d.offset + 1
        return batch

    async def commit(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            key = (self._group, d.envelope.topic, d.partition)
            self._broker.committed[key] = max(self._broker.committed[key], d.offset + 1)


class InMemoryLag:
    """The groups' lag on the in-memory broker: each partition's length less its committed offset."""

    def __init__(self, broker: InMemoryBroker, groups: Sequence[SyncGroup]) -> None:
        self._broker, self._groups = broker, list(groups)

    async def lag(self) -> dict[tuple[str, str, int], int]:
        return {
            (g.name, t, p): len(self._broker.logs.get((t, p), [])) - self._broker.committed[(g.group_id, t, p)]
            for g in self._groups
            for t in g.topics
            for p in range(self._broker.partitions)
        }


class InMemoryOutboxWakeup:
    def __init__(self, db: InMemoryDatabase) -> None:
        self._event = db.outbox_written

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()
