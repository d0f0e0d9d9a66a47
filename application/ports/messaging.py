"""The broker: topics, deliveries, commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec


class Envelope(msgspec.Struct, frozen=True):
    """A message on a topic: ``key`` keeps one customer's messages in order."""

    topic: str
    key: str
    event_id: str
    payload: bytes
    error: str | None = None  # set on dead letters


class MessagePublisher(Protocol):
    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Durably publish, in order; returns once the broker has acknowledged every message."""


class Delivery(msgspec.Struct, frozen=True):
    envelope: Envelope
    partition: int
    offset: int


Partition = tuple[str, int]  # (topic, partition)


class MessageSource(Protocol):
    """A consumer-group subscription to sync topics, committed manually.

    Fetching regularly is what keeps the member in its group: a consumer that must wait (a
    system is down) pauses the partitions concerned and goes on fetching, rather than sleeping.
    A source that cannot reach its broker raises ``BrokerUnavailable``.
    """

    async def fetch(self, max_messages: int, timeout: float) -> list[Delivery]: ...

    async def commit(self, deliveries: Sequence[Delivery]) -> None:
        """Record that these (and everything before them on their partitions) are done."""

    def assignment(self) -> set[Partition]:
        """The partitions this member owns now (after a rebalance, their deliveries start again
        from the last committed offset)."""

    def pause(self, partitions: set[Partition]) -> None:
        """Stop fetching these partitions (their deliveries wait on the broker) until resumed."""

    def resume(self, partitions: set[Partition]) -> None: ...
