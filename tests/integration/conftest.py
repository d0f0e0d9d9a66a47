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

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from adapters.kafka.topics import ensure_topics, wait_for_broker
from domain.messages import dead_letter_topic

KAFKA_DEFAULT_BOOTSTRAP = "127.0.0.1:29092"


@pytest.fixture(scope="session")
def kafka() -> str:
    """The bootstrap servers of a reachable broker (KAFKA_BOOTSTRAP_SERVERS, else the local default)."""
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", KAFKA_DEFAULT_BOOTSTRAP)
    try:
        # Its own short-lived loop: this runs once per session, outside the tests' loops.
        asyncio.run(wait_for_broker(servers, timeout=10.0))
    except Exception as exc:
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


# ===================================================================================================
# The whole pipeline (owner: the infrastructure tests): real `custsync` processes on a database of
# their own, the real sync topics recreated per test, and a Stripe-compatible HTTP server.
# ===================================================================================================
from adapters.postgres.engine import create_engine
from tests.support.infra import migrate, recreate_database, reset_topics, truncate
from tests.support.processes import Processes, base_env, wait_until
from tests.support.stripe_server import StripeServer, free_port

PIPELINE_DATABASE = "custsync_it"
PIPELINE_WEBHOOK_SECRET = "whsec_integration"
PIPELINE_API_TOKEN = "it-api-token"
DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://custsync:custsync@127.0.0.1:25432/custsync_test"


@pytest.fixture(scope="session")
def pipeline_database_url(kafka: str) -> str:
    """A database only the pipeline tests use, recreated and migrated by `custsync migrate`."""
    try:
        url = asyncio.run(recreate_database(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL), PIPELINE_DATABASE))
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not reachable ({exc}): `scripts/services.sh up`", pytrace=False)
    migrate(url, kafka)
    return url


class Pipeline:
    def __init__(self, database_url: str, kafka: str, stripe: StripeServer, processes: Processes) -> None:
        self.database_url, self.kafka, self.stripe, self.processes = database_url, kafka, stripe, processes
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.api_token = PIPELINE_API_TOKEN
        # The API refuses to serve real storage without a token: every call carries it.
        self.http = httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {PIPELINE_API_TOKEN}"}, timeout=5)

    def start_api(self):
        return self.processes.start("api", "--port", str(self.api_port))

    def start_worker(self):
        return self.processes.start("worker")

    def wait_for_api(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            try:
                return self.http.get("/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout, 0.1, "the API up")

    def engine(self):
        return create_engine(self.database_url, pool_size=2)


@pytest.fixture
async def pipeline(pipeline_database_url: str, kafka: str, tmp_path) -> AsyncIterator[Pipeline]:
    await truncate(pipeline_database_url)
    await reset_topics(kafka)
    env = {
        **base_env(),
        "DATABASE_URL": pipeline_database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "KAFKA_PARTITIONS": "3",
        "KAFKA_GROUP_ID": f"custsync-it-{uuid.uuid4().hex[:8]}",
        "STRIPE_SECRET_KEY": "sk_test_integration",
        "STRIPE_WEBHOOK_SECRET": PIPELINE_WEBHOOK_SECRET,
        "STRIPE_MAX_RPS": "200",
        "API_TOKEN": PIPELINE_API_TOKEN,
    }
    with StripeServer() as stripe:
        env["STRIPE_API_BASE"] = stripe.url
        processes = Processes(env, tmp_path)
        pipeline = Pipeline(pipeline_database_url, kafka, stripe, processes)
        try:
            yield pipeline
        finally:
            processes.stop_all()
            pipeline.http.close()


# ===================================================================================================
# stripe-mock (owner: the Stripe adapter's request-shape tests). Self-contained: nothing outside this
# section depends on it. Stripe's official mock, started by `scripts/services.sh up` (scripts/stripe-mock.sh).
# ===================================================================================================
from tests.support.stripe_mock import check_stripe_mock, stripe_mock_url


@pytest.fixture(scope="session")
def stripe_mock() -> str:
    """The base URL of a reachable stripe-mock (STRIPE_MOCK_URL, else the local default)."""
    url = stripe_mock_url()
    try:
        check_stripe_mock(url)
    except Exception as exc:
        pytest.fail(
            f"stripe-mock is not reachable at {url} ({exc}). Start it with `scripts/services.sh up` "
            "(or `scripts/stripe-mock.sh up`), or point STRIPE_MOCK_URL at one.",
            pytrace=False,
        )
    return url


# ===================================================================================================
# End of the stripe-mock section.
# ===================================================================================================
