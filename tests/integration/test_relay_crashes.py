"""The outbox relay on PostgreSQL and Kafka, crashed between publishing and marking."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import msgspec
import pytest
from sqlalchemy import text

from adapters.clock import SystemClock
from adapters.kafka.publisher import KafkaPublisher
from adapters.postgres.unit_of_work import SqlAlchemyUnitOfWorkFactory
from application.commands import CreateCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.update import patch_customer
from application.sync.relay import relay_once
from domain.messages import OUTBOUND_TOPIC, CustomerChanged
from tests.integration.test_sync_pipeline import read_topic

pytestmark = pytest.mark.integration


class CrashAfterPublish(Exception):
    pass


class PublishThenCrash:
    """Publishes for real, then dies before the relay can mark anything published."""

    def __init__(self, publisher: KafkaPublisher) -> None:
        self._publisher = publisher

    async def publish(self, envelopes) -> None:
        await self._publisher.publish(envelopes)
        raise CrashAfterPublish


async def make_history(uow_factory, clock, customers: int, edits: int) -> int:
    for c in range(customers):
        customer = await create_customer(CreateCustomer(f"C{c}"), uow_factory(), clock)
        for e in range(edits):
            await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": f"C{c}.{e}"}), uow_factory(), clock)
    return customers * (1 + edits)


async def unpublished(engine) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))).scalar_one()


def assert_complete_and_in_order(deliveries, customers: int, last_version: int) -> int:
    """Every customer's last event arrived (earlier ones may be left out where a later one of the
    same batch stands for them: application.sync.relay.coalesce); per customer, first arrivals are
    in version order. Returns the duplicates."""
    first_versions: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for delivery in deliveries:
        event = msgspec.json.decode(delivery.envelope.payload, type=CustomerChanged)
        if event.event_id not in seen:
            seen.add(event.event_id)
            first_versions[delivery.envelope.key].append(event.version)
    assert len(first_versions) == customers
    for key, versions in first_versions.items():
        assert versions == sorted(versions), f"customer {key} reordered: {versions}"
        assert versions[-1] == last_version, f"customer {key} lost its last change: {versions}"
    return len(deliveries) - len(seen)


async def test_a_crash_between_publish_and_mark_republishes_without_loss_or_reordering(pipeline):
    engine = pipeline.engine()
    uow_factory, clock = SqlAlchemyUnitOfWorkFactory(engine), SystemClock()
    total = await make_history(uow_factory, clock, customers=4, edits=3)
    async with KafkaPublisher(pipeline.kafka) as publisher:
        with pytest.raises(CrashAfterPublish):
            await relay_once(uow_factory, PublishThenCrash(publisher), clock, batch_size=10)
        assert await unpublished(engine) == total  # the mark never committed
        for _ in range(10):
            if not await relay_once(uow_factory, publisher, clock, batch_size=10):
                break
    assert await unpublished(engine) == 0
    # The first batch of 10 (customers 1 and 2 whole, customer 3's first two) goes out as 3
    # messages, twice; the rest as 2: customer 3's last and customer 4's.
    deliveries = await read_topic(pipeline.kafka, OUTBOUND_TOPIC, expected=3 + 3 + 2)
    duplicates = assert_complete_and_in_order(deliveries, customers=4, last_version=4)
    assert duplicates == 3  # the crashed batch went out twice: at-least-once
    await engine.dispose()


async def test_relays_killed_with_sigkill_mid_stream_lose_and_reorder_nothing(pipeline):
    engine = pipeline.engine()
    uow_factory, clock = SqlAlchemyUnitOfWorkFactory(engine), SystemClock()
    await make_history(uow_factory, clock, customers=40, edits=9)
    kills = 0
    for delay in (1.2, 1.5, 1.8):  # start-up takes about a second; then batches of 200 go out
        relay = pipeline.processes.start("relay")
        await asyncio.sleep(delay)
        if relay.poll() is None:
            pipeline.processes.kill(relay)
            kills += 1
    assert kills == 3
    survivor = pipeline.processes.start("relay")
    deadline = time.monotonic() + 60
    while await unpublished(engine) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    pipeline.processes.kill(survivor)
    assert await unpublished(engine) == 0
    assert_complete_and_in_order(await read_topic(pipeline.kafka, OUTBOUND_TOPIC, expected=40), customers=40, last_version=10)
    await engine.dispose()
