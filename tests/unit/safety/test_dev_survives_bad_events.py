"""Finding 9, in ``custsync dev``: one poisoned fake-Stripe event once killed the whole process."""

import asyncio

from entrypoints.dev import webhook_delivery_task
from tests.support.system import WEBHOOK_SECRET


async def test_the_dev_webhook_delivery_outlives_an_event_with_a_poisoned_internal_id(system):
    fake = system.stripe
    poisoned = await fake.create_async(params={"name": "Poison", "metadata": {"internal_id": "²"}})
    stopping = asyncio.Event()
    delivery = asyncio.create_task(webhook_delivery_task(system.container, fake, WEBHOOK_SECRET)(stopping))
    await asyncio.sleep(0.05)
    healthy = await fake.create_async(params={"name": "Healthy"})
    await asyncio.sleep(0.05)
    assert not delivery.done()  # still delivering
    stopping.set()
    await asyncio.wait_for(delivery, 5)
    system.delivered = len(fake.events)  # the task delivered them; the worker applies them now
    await system.settle()
    async with system.uow_factory() as uow:
        names = sorted(c.data.name for c in await uow.customers.page(after_id=None, limit=10))
    assert names == ["Healthy", "Poison"]
    assert {poisoned["id"], healthy["id"]} <= set(fake.customers)
