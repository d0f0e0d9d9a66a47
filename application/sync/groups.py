"""The worker's consumer groups: one per destination, so that one system's outage holds up no other.

``sync.inbound`` is read by one group, whose work lands in the catalog. ``sync.outbound`` is read
by one group *per integration*, each pushing every catalog change to its own system only: each
keeps its own committed offsets, lanes and backoff, so while Salesforce is down a customer's
later changes still reach Stripe (and the other way round), and Salesforce's group catches up
from its own offsets when it is back. Without that (one group calling every system in turn), a
delivery waiting out one system's outage would hold the same customer's later changes for all.

A group added later (an integration newly enabled, or a first start after an upgrade from the
single group) has no committed offset and starts at the oldest message Kafka still keeps: every
event it reads again is settled already (a sync record per event and system) or pushes the
customer's current state, so nothing is sent twice -- and a newly enabled system is first synced
by reconcile before the worker starts with it (docs/how-to/first-sync.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import msgspec

from application.sync.consumer import SyncConsumer
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC

CATALOG = "catalog"  # the destination of sync.inbound


class SyncGroup(msgspec.Struct, frozen=True):
    """A consumer group of the worker: ``name`` is where its work lands (``catalog``, or the
    system its outbound changes go to)."""

    name: str
    group_id: str
    topics: tuple[str, ...]


def sync_groups(group_id: str, systems: Iterable[str]) -> list[SyncGroup]:
    """``group_id`` (KAFKA_GROUP_ID) reads sync.inbound; ``<group_id>.<system>`` reads sync.outbound for each system."""
    return [
        SyncGroup(CATALOG, group_id, (INBOUND_TOPIC,)),
        *(SyncGroup(system, f"{group_id}.{system}", (OUTBOUND_TOPIC,)) for system in systems),
    ]


class SyncConsumers:
    """The worker's consumers, one per group, run side by side (each its own lanes, backoff and
    concurrency: a system that hangs holds no slot of another's)."""

    def __init__(self, consumers: dict[str, SyncConsumer]) -> None:
        self.members = consumers

    async def run(self, stopping: asyncio.Event) -> None:
        """Until ``stopping``. One that fails (a bug: each survives outages) sets ``stopping``, so
        that the others finish the deliveries in hand and commit, as on SIGTERM; then it is raised."""

        async def until_stopped(consumer: SyncConsumer) -> None:
            try:
                await consumer.run(stopping)
            finally:
                stopping.set()

        ended = await asyncio.gather(*(until_stopped(c) for c in self.members.values()), return_exceptions=True)
        for outcome in ended:
            if isinstance(outcome, BaseException):
                raise outcome

    async def run_once(self, stopping: asyncio.Event, timeout: float = 0.0) -> int:
        """One batch of each group, in turn; how many deliveries were finished and committed."""
        done = 0
        for consumer in self.members.values():
            done += await consumer.run_once(stopping, timeout)
        return done

    def waiting(self) -> dict[str, dict[tuple[str, int], str]]:
        """Per group, the partitions with a delivery waiting out a failure (and the error)."""
        return {name: waiting for name, consumer in self.members.items() if (waiting := consumer.waiting())}

    @property
    def coalesced(self) -> int:
        return sum(consumer.coalesced for consumer in self.members.values())
