"""The real pipeline: `custsync api` and `custsync worker` processes on PostgreSQL and Kafka,
talking to a Stripe-compatible HTTP server, with processes killed at the worst moments."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import msgspec
import pytest

from adapters.kafka.subscription import KafkaSubscription
from domain.messages import OUTBOUND_TOPIC, CustomerChanged
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration


async def read_topic(kafka: str, topic: str, expected: int, timeout: float = 30.0) -> list:
    """Every message on ``topic`` from the beginning (a fresh group), once at least ``expected`` arrived."""
    subscription = KafkaSubscription(kafka, [topic], f"reader-{uuid.uuid4().hex[:8]}")
    await subscription.start()
    seen = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(seen) < expected and loop.time() < deadline:
            seen += await subscription.fetch(500, timeout=0.5)
        # A moment more, to catch duplicates beyond the expected count.
        seen += await subscription.fetch(500, timeout=0.5)
    finally:
        await subscription.stop()
    return seen


def api_ready(pipeline) -> bool:
    try:
        return pipeline.http.get("/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def stripe_link(pipeline, customer_id: int):
    body = pipeline.http.get(f"/api/v1/customers/{customer_id}", timeout=5).json()
    [link] = body["mappings"]
    return link if link["sync_status"] == "synced" else None


async def test_an_api_write_reaches_sync_outbound_and_the_worker_carries_it_to_stripe(pipeline):
    pipeline.start_api()
    pipeline.start_worker()
    wait_until(lambda: api_ready(pipeline), what="the API")
    created = pipeline.http.post("/api/v1/customers", json={"name": "Ada", "email": "ada@example.com"}, timeout=5)
    assert created.status_code == 201
    customer_id = created.json()["id"]

    link = wait_until(lambda: stripe_link(pipeline, customer_id), what="the Stripe link")
    stripe_customer = pipeline.stripe.stripe.customers[link["external_id"]]
    metadata = stripe_customer["metadata"]
    assert (stripe_customer["name"], metadata["internal_id"]) == ("Ada", str(customer_id))
    assert metadata["custsync_create"].startswith(f"custsync-{metadata['custsync_installation']}-create-")

    [message] = await read_topic(pipeline.kafka, OUTBOUND_TOPIC, expected=1)
    event = msgspec.json.decode(message.envelope.payload, type=CustomerChanged)
    assert (message.envelope.key, message.envelope.event_id, event.customer_id) == (str(customer_id), event.event_id, customer_id)


async def test_a_worker_killed_after_calling_stripe_and_before_committing_causes_no_duplicate(pipeline):
    pipeline.start_api()
    worker = pipeline.start_worker()
    wait_until(lambda: api_ready(pipeline), what="the API")
    # Stripe applies the create, then holds its answer while the worker is killed.
    pipeline.stripe.hold = lambda method, path: method == "POST" and path == "/v1/customers"
    created = pipeline.http.post("/api/v1/customers", json={"name": "Ada"}, timeout=5)
    customer_id = created.json()["id"]
    assert pipeline.stripe.held.wait(30), "the worker never called Stripe"
    pipeline.processes.kill(worker)
    pipeline.stripe.hold = None
    assert len(pipeline.stripe.stripe.customers) == 1

    pipeline.start_worker()  # the uncommitted event is redelivered to the new worker
    link = wait_until(lambda: stripe_link(pipeline, customer_id), timeout=60, what="the Stripe link after restart")
    creates = [key for method, path, key in pipeline.stripe.requests if (method, path) == ("POST", "/v1/customers")]
    assert len(creates) == 2 and creates[0] == creates[1]  # the same idempotency key both times
    assert list(pipeline.stripe.stripe.customers) == [link["external_id"]]
