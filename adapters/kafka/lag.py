"""The worker group's consumer lag, read from the broker as ``kafka-consumer-groups.sh`` reads it:
each partition's end offset less the group's committed offset. Any process can ask (the API's
status, the CLI), not only a member of the group."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from application.errors import BrokerUnavailable


class KafkaLag:
    def __init__(
        self, bootstrap_servers: str, group_id: str, topics: Sequence[str], *, timeout: float = 5.0, **options: Any
    ) -> None:
        self._group_id, self._topics, self._timeout = group_id, list(topics), timeout
        self._config = dict(bootstrap_servers=bootstrap_servers, **options)

    async def lag(self) -> dict[tuple[str, int], int]:
        try:
            return await asyncio.wait_for(self._read(), self._timeout)
        except Exception as exc:  # noqa: BLE001 - any failure of the broker's clients: the lag is unknown, nothing more
            raise BrokerUnavailable(
                f"cannot read the consumer lag from {self._config['bootstrap_servers']}: {type(exc).__name__} {exc}".rstrip()
            ) from exc

    async def _read(self) -> dict[tuple[str, int], int]:
        # Short-lived clients: a sample every few seconds does not need a connection kept open.
        admin = AIOKafkaAdminClient(client_id="custsync-lag", **self._config)
        offsets = AIOKafkaConsumer(client_id="custsync-lag", enable_auto_commit=False, **self._config)
        try:
            await admin.start()
            await offsets.start()
            await offsets.topics()  # the cluster's metadata, for the partitions of each topic
            partitions = [
                TopicPartition(topic, p) for topic in self._topics for p in sorted(offsets.partitions_for_topic(topic) or ())
            ]
            if not partitions:
                return {}
            committed = await admin.list_consumer_group_offsets(self._group_id, partitions=partitions)
            ends = await offsets.end_offsets(partitions)
            starts = await offsets.beginning_offsets(partitions)
        finally:
            # Bounded too: closing waits for in-flight requests to a broker that may not answer.
            await asyncio.gather(
                asyncio.wait_for(offsets.stop(), self._timeout), asyncio.wait_for(admin.close(), self._timeout),
                return_exceptions=True,
            )
        lag = {}
        for tp in partitions:
            done = committed.get(tp)
            # No committed offset yet: the group starts at the log's beginning (auto_offset_reset).
            start = done.offset if done is not None and done.offset >= 0 else starts[tp]
            lag[(tp.topic, tp.partition)] = max(0, ends[tp] - start)
        return lag
