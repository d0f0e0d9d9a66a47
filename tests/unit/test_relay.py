import asyncio

import pytest

from adapters.memory.bus import InMemoryBroker, InMemoryOutboxWakeup, InMemoryPublisher
from application.commands import CreateCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.update import patch_customer
from application.sync.relay import relay_once, run_relay
from domain.messages import OUTBOUND_TOPIC, CustomerChanged, decode


class BrokenPublisher:
    async def publish(self, envelopes):
        raise ConnectionError("broker unreachable")


async def test_relay_publishes_in_commit_order_keyed_by_customer_then_marks(db, clock):
    broker = InMemoryBroker(partitions=1)
    a = await create_customer(CreateCustomer("A"), db.unit_of_work(), clock)
    b = await create_customer(CreateCustomer("B"), db.unit_of_work(), clock)
    await patch_customer(PatchCustomer(customer_id=a.id, changes={"name": "A2"}), db.unit_of_work(), clock)
    assert await relay_once(db.unit_of_work, InMemoryPublisher(broker), clock) == 3
    sent = broker.messages(OUTBOUND_TOPIC)
    # A's create is coalesced into its later edit (the push is of A's current state either way).
    assert [(m.key, decode(m.payload, CustomerChanged).version) for m in sent] == [(str(b.id), 1), (str(a.id), 2)]
    assert all(m.event_id == decode(m.payload, CustomerChanged).event_id for m in sent)
    assert await relay_once(db.unit_of_work, InMemoryPublisher(broker), clock) == 0


async def test_relay_publishes_in_batches(db, clock):
    broker = InMemoryBroker()
    for i in range(5):
        await create_customer(CreateCustomer(f"C{i}"), db.unit_of_work(), clock)
    assert await relay_once(db.unit_of_work, InMemoryPublisher(broker), clock, batch_size=2) == 2
    assert await relay_once(db.unit_of_work, InMemoryPublisher(broker), clock, batch_size=10) == 3


async def test_a_failed_publish_leaves_the_events_in_the_outbox(db, clock):
    await create_customer(CreateCustomer("A"), db.unit_of_work(), clock)
    with pytest.raises(ConnectionError):
        await relay_once(db.unit_of_work, BrokenPublisher(), clock)
    broker = InMemoryBroker()
    assert await relay_once(db.unit_of_work, InMemoryPublisher(broker), clock) == 1


async def test_the_running_relay_wakes_on_commit_rather_than_waiting_out_its_poll(db, clock):
    broker = InMemoryBroker()
    stopping = asyncio.Event()
    # A poll interval of an hour: only the wake-up can deliver within the test's timeout.
    relay = asyncio.create_task(
        run_relay(db.unit_of_work, InMemoryPublisher(broker), clock, InMemoryOutboxWakeup(db), stopping, poll_interval=3600)
    )
    await asyncio.sleep(0.01)
    await create_customer(CreateCustomer("A"), db.unit_of_work(), clock)
    for _ in range(100):
        if broker.messages(OUTBOUND_TOPIC):
            break
        await asyncio.sleep(0.01)
    assert len(broker.messages(OUTBOUND_TOPIC)) == 1
    stopping.set()
    db.outbox_written.set()
    await asyncio.wait_for(relay, 5)
