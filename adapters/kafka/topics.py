"""Provisioning: the broker does not create topics on demand, so the worker (or the deploy) creates
the sync topics and their dead-letter topics before anyone produces or subscribes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, NoError, TopicAlreadyExistsError, for_code

from application.errors import BrokerUnavailable
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC, dead_letter_topic

log = logging.getLogger(__name__)


class TopicsNotCreated(RuntimeError):
    """The broker refused to create a topic (a replication factor above its brokers, say)."""


SYNC_TOPICS = (OUTBOUND_TOPIC, INBOUND_TOPIC, dead_letter_topic(OUTBOUND_TOPIC), dead_letter_topic(INBOUND_TOPIC))


@asynccontextmanager
async def _admin(bootstrap_servers: str, request_timeout_ms: int = 30_000) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="custsync-admin", request_timeout_ms=request_timeout_ms
    )
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


async def ensure_topics(
    bootstrap_servers: str,
    partitions: int,
    replication_factor: int = 1,
    *,
    topics: Sequence[str] = SYNC_TOPICS,
    ready_timeout: float = 15.0,
) -> list[str]:
    """Create ``topics`` that do not exist yet; returns the names created (existing ones are fine).

    Returns once every partition of them has a leader, so a producer or consumer started next
    does not race the metadata. An existing topic with another partition count is left alone
    (shrinking is impossible, growing would move keys between partitions): only a warning.
    """
    try:
        async with _admin(bootstrap_servers, request_timeout_ms=10_000) as admin:
            return await _create(admin, partitions, replication_factor, topics, ready_timeout)
    except TimeoutError as exc:  # an OSError too, but the broker answered: its topics have no leader
        raise TopicsNotCreated(str(exc)) from exc
    except (KafkaConnectionError, OSError) as exc:
        raise BrokerUnavailable(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc


async def _create(
    admin: AIOKafkaAdminClient, partitions: int, replication_factor: int, topics: Sequence[str], ready_timeout: float
) -> list[str]:
    response = await admin.create_topics([NewTopic(t, partitions, replication_factor) for t in topics])
    created: list[str] = []
    for result in response.to_object()["topic_errors"]:
        error = for_code(result["error_code"])
        if error is NoError:
            created.append(result["topic"])
        elif error is not TopicAlreadyExistsError:
            raise TopicsNotCreated(
                f"cannot create topic {result['topic']} ({partitions} partitions, replication factor "
                f"{replication_factor}): {error.__name__}: {result['error_message']}"
            )
    shapes = await _wait_until_led(admin, topics, ready_timeout)
    for topic, (count, replicas) in shapes.items():
        if count != partitions:
            log.warning("topic %s has %d partitions, not the %d configured; left as it is", topic, count, partitions)
        if replicas != replication_factor:
            log.warning(
                "topic %s has %d replica(s), not the %d configured; left as it is (kafka-reassign-partitions.sh changes it)",
                topic,
                replicas,
                replication_factor,
            )
    if created:
        log.info("created Kafka topics %s (%d partitions each)", created, partitions)
    return [t for t in topics if t in created]


async def _wait_until_led(admin: AIOKafkaAdminClient, topics: Sequence[str], timeout: float) -> dict[str, tuple[int, int]]:
    """(partitions, fewest replicas of one) of each of ``topics``, once each of their partitions has a leader."""
    deadline = time.monotonic() + timeout
    while True:
        described = await admin.describe_topics(list(topics))
        ready = {
            d["topic"]: (len(d["partitions"]), min(len(p["replicas"]) for p in d["partitions"]))
            for d in described
            if d["error_code"] == 0 and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
        }
        if len(ready) == len(set(topics)):
            return ready
        if time.monotonic() >= deadline:
            raise TimeoutError(f"Kafka topics {sorted(set(topics) - set(ready))} have no leader after {timeout}s")
        await asyncio.sleep(0.1)


async def wait_for_broker(bootstrap_servers: str, timeout: float = 30.0) -> None:
    """Return once the broker answers a metadata request; TimeoutError (with the last cause) if it
    has not within ``timeout`` seconds. For start-up ordering, where the broker may still be booting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with _admin(bootstrap_servers, request_timeout_ms=max(1000, int(timeout * 1000))) as admin:
                await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Kafka at {bootstrap_servers} not reachable within {timeout}s: {exc!r}") from exc
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
