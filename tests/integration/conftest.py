"""Fixtures for the tests that run against the real services started by ``scripts/services.sh up``.

A missing service fails these tests instead of skipping them: a skipped integration suite looks
green in CI while testing nothing. Each service has its own self-contained section below.
"""

from __future__ import annotations

# ===================================================================================================
# Kafka (owner: the Kafka adapter). Self-contained: nothing outside this section depends on it.
# ===================================================================================================
import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from adapters.kafka.topics import ensure_topics, wait_for_broker
from domain.messages import dead_letter_topic

KAFKA_DEFAULT_BOOTSTRAP = "127.0.0.1:59092"


@pytest.fixture(scope="session")
def kafka() -> str:
    """The bootstrap servers of a reachable broker (KAFKA_BOOTSTRAP_SERVERS, else the local default)."""
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", KAFKA_DEFAULT_BOOTSTRAP)
    try:
        # Its own short-lived loop: this runs once per session, outside the tests' loops.
        asyncio.run(wait_for_broker(servers, timeout=10.0))
    except Exception as exc:  # noqa: BLE001 - whatever the cause, say how to fix it
        pytest.fail(
            f"Kafka is not reachable at {servers} ({exc}). Start it with `scripts/services.sh up`, "
            "or point KAFKA_BOOTSTRAP_SERVERS at a broker.",
            pytrace=False,
        )
    return servers


class KafkaTopics:
    """Unique topic names for one test; every name handed out is deleted after the test."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.names: list[str] = []

    def unique(self, suffix: str = "") -> str:
        name = f"test.{uuid.uuid4().hex[:12]}{suffix}"
        self.names.append(name)
        return name

    async def create(self, count: int = 1, partitions: int = 3, dead_letters: bool = False) -> list[str]:
        """``count`` new topics (and, with ``dead_letters``, their ``.dlq`` topics, not returned)."""
        names = [self.unique() for _ in range(count)]
        dlqs = [self.unique_as(dead_letter_topic(name)) for name in names] if dead_letters else []
        await ensure_topics(self.bootstrap_servers, partitions, topics=names + dlqs)
        return names

    def unique_as(self, name: str) -> str:
        self.names.append(name)
        return name


@pytest.fixture
async def kafka_topics(kafka: str) -> AsyncIterator[KafkaTopics]:
    """Stop the clients that use the topics before the test ends (``async with`` does)."""
    topics = KafkaTopics(kafka)
    yield topics
    if topics.names:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka, client_id="custsync-tests")
        try:
            await admin.start()
            await admin.delete_topics(topics.names)  # names never created just come back with an error code
        finally:
            await admin.close()


@pytest.fixture
def kafka_group() -> Callable[[], str]:
    """A fresh consumer-group id, so that no test sees another's committed offsets."""
    return lambda: f"test-group-{uuid.uuid4().hex[:12]}"


# ===================================================================================================
# End of the Kafka section.
# ===================================================================================================
