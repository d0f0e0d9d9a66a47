"""Small steps the safety tests share: a system under a policy, a synced customer, one outbound or
inbound step at a time."""

import json

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


def make(clock, policy="latest_wins", **kw):
    return EmbeddedSystem(
        Settings(stripe_webhook_secret=WEBHOOK_SECRET, conflict_policy=ConflictPolicy(policy), **kw), clock=clock
    )


async def new_customer(system, name="A", email="a@example.com"):
    c = await create_customer(CreateCustomer(name, email), system.uow_factory(), system.clock)
    await system.settle()
    return c.id, (await system.mapping(c.id)).external_id


async def patch(system, cid, **changes):
    return await patch_customer(PatchCustomer(customer_id=cid, changes=changes), system.uow_factory(), system.clock)


async def last_outbound(system):
    await system.relay()
    return decode(system.messages(OUTBOUND_TOPIC)[-1].payload, CustomerChanged)


async def outbound(system, event):
    await sync_outbound(event, system.container.integrations(), await system.context())


async def inbound_event(system, event):
    await sync_inbound(parse_event(json.dumps(event).encode(), "stripe"), system.container.integrations(), await system.context())


async def settle_all(system, rounds=4, step=2):
    for _ in range(rounds):
        system.clock.advance(step)
        await system.settle()


async def state(system, cid, external_id):
    c = await system.customer(cid)
    s = system.stripe.customers.get(external_id)
    return (c.data.name, c.data.email), (s and (s["name"], s["email"]))


async def notes(system, cid):
    return [r.note for r in await system.history(cid)]
