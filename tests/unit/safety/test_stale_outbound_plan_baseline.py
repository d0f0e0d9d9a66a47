"""internal_wins: our push lands, a person changes the field at Stripe, and the inbound worker
handles that event before the outbound store. The store must not cancel the push the inbound
worker queued: both sides end with the catalog's value (found by the hostile review)."""
import json

from adapters.memory.stripe import InMemoryStripe
from adapters.stripe.events import parse_event
from application.commands import CreateCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.update import patch_customer
from application.sync.inbound import sync_inbound
from application.sync.outbound import sync_outbound
from domain.conflicts import ConflictPolicy
from domain.messages import OUTBOUND_TOPIC, CustomerChanged, decode
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem


class Racy(InMemoryStripe):
    armed = None

    async def update_async(self, customer, params=None, options=None):
        result = await super().update_async(customer, params, options)
        if self.armed is not None:  # our push has landed; its answer is on its way back
            system, self.armed = self.armed, None
            await super().update_async(customer, params={"name": "Y"})  # a person
            ctx = await system.context()
            for event in self.events[system.delivered:]:  # the inbound worker, in another process
                await sync_inbound(parse_event(json.dumps(event).encode(), "stripe"), system.container.integrations(), ctx)
        return result


async def test_a_stale_outbound_store_never_cancels_the_push_inbound_queued(clock):
    system = EmbeddedSystem(Settings(stripe_webhook_secret=WEBHOOK_SECRET, conflict_policy=ConflictPolicy.INTERNAL_WINS), clock=clock)
    fake = Racy(clock)
    system.use_stripe(fake)
    customer = await create_customer(CreateCustomer("A", "a@example.com"), system.uow_factory(), clock)
    await system.settle()
    external_id = (await system.mapping(customer.id)).external_id
    clock.advance(2)
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "B"}), system.uow_factory(), clock)
    await system.relay()
    event = decode(system.messages(OUTBOUND_TOPIC)[-1].payload, CustomerChanged)
    fake.armed = system
    await sync_outbound(event, system.container.integrations(), await system.context())
    for _ in range(3):
        clock.advance(2)
        await system.settle()
    here, there = (await system.customer(customer.id)).name, fake.customers[external_id]["name"]
    mapping = await system.mapping(customer.id)
    assert here == there, (here, there, mapping.synced, mapping.in_sync_with(await system.customer(customer.id)))
