"""The worker groups' consumer lag, read from the broker as ``kafka-consumer-groups.sh`` reads it:
each partition's end offset less each group's committed offset. Any process can ask (the API's
status, the CLI), not only a member of the group."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from application.errors import BrokerUnavailable
from application.sync.groups import SyncGroup


class KafkaLag:
    def __init__(self, bootstrap_servers: str, groups: Sequence[SyncGroup], *, timeout: float = 5.0, **options: Any) -> None:
        self._groups, self._timeout = list(groups), timeout
        self._config = dict(bootstrap_servers=bootstrap_servers, **options)

    async def lag(self) -> dict[tuple[str, str, int], int]:
        try:
            return await asyncio.wait_for(self._read(), self._timeout)
        except Exception as exc:
            why = str(exc) if str(exc).startswith(type(exc).__name__) else f"{type(exc).__name__} {exc}".rstrip()
            raise BrokerUnavailable(f"cannot read the consumer lag from {self._config['bootstrap_servers']}: {why}") from exc

    async def _read(self) -> dict[tuple[str, str, int], int]:
        # Short-lived clients: a sample every few seconds does not need a connection kept open.
        admin = AIOKafkaAdminClient(client_id="custsync-lag", **self._config)
        offsets = AIOKafkaConsumer(client_id="custsync-lag", enable_auto_commit=False, **self._config)
        try:
            await admin.start()
            await offsets.start()
            # The partitions of each topic, from the cluster's metadata. (Not the consumer's
            # partitions_for_topic: it knows only the topics it subscribed to, and this one subscribes
            # to none -- it answered None, and the lag was always empty.)
            topics = sorted({t for group in self._groups for t in group.topics})
            described = await admin.describe_topics(topics)
            partitions_of = {
                t["topic"]: sorted(p["partition"] for p in t["partitions"]) for t in described if not t["error_code"]
            }
            read = {
                group: [TopicPartition(t, p) for t in group.topics for p in partitions_of.get(t, ())] for group in self._groups
            }
            partitions = sorted({tp for tps in read.values() for tp in tps})
            if not partitions:
                return {}
            committed = {
                group: await admin.list_consumer_group_offsets(group.group_id, partitions=tps) for group, tps in read.items()
            }
            ends = await offsets.end_offsets(partitions)
            starts = await offsets.beginning_offsets(partitions)
        finally:
            # Bounded too: closing waits for in-flight requests to a broker that may not answer.
            await asyncio.gather(
                asyncio.wait_for(offsets.stop(), self._timeout),
                asyncio.wait_for(admin.close(), self._timeout),
                return_exceptions=True,
            )
        lag = {}
        for group, tps in read.items():
            for tp in tps:
                done = committed[group].get(tp)
                # No committed offset yet: the group starts at the log's beginning (auto_offset_reset).
                start = done.offset if done is not None and done.offset >= 0 else starts[tp]
                lag[(group.name, tp.topic, tp.partition)] = max(0, ends[tp] - start)
        return lag
