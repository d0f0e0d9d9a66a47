"""The outbound store never applies a plan made before its Stripe call over what the inbound worker
stored meanwhile: a fresh plan decides (found by the hostile review). A person edits Stripe while
our call is in flight, and the inbound worker (another process) handles that event before our
store: under ``stripe_wins`` during our conflict read, under ``internal_wins`` after our write."""

import json

import pytest

from adapters.memory.stripe import InMemoryStripe
from adapters.stripe.events import parse_event
from application.sync.inbound import sync_inbound
from tests.unit.safety.helpers import last_outbound, make, new_customer, outbound, patch, settle_all


class PersonMeanwhile(InMemoryStripe):
    """Right after the ``during`` call (``retrieve`` or ``update``), a person sets the name to Y and
    the inbound worker applies the pending events -- all before our worker stores its outcome."""

    def __init__(self, clock, during: str) -> None:
        super().__init__(clock)
        self.during, self.system = during, None

    async def retrieve_async(self, customer, params=None, options=None):
        result = await super().retrieve_async(customer, params, options)
        await self._meanwhile("retrieve", customer)
        return result

    async def update_async(self, customer, params=None, options=None):
        result = await super().update_async(customer, params, options)
        await self._meanwhile("update", customer)
        return result

    async def _meanwhile(self, call: str, customer: str) -> None:
        if self.system is None or call != self.during:
            return
        system, self.system = self.system, None
        await InMemoryStripe.update_async(self, customer, params={"name": "Y"})
        ctx = await system.context()
        for event in self.events[system.delivered :]:
            await sync_inbound(parse_event(json.dumps(event).encode(), "stripe"), system.container.integrations(), ctx)


@pytest.mark.parametrize(
    ("policy", "during", "person_first"),
    [("stripe_wins", "retrieve", True), ("internal_wins", "update", False), ("latest_wins", "update", False)],
)
async def test_a_stale_plan_is_never_stored_over_a_newer_inbound_change(clock, policy, during, person_first):
    system = make(clock, policy)
    fake = PersonMeanwhile(clock, during)
    system.use_stripe(fake)
    customer_id, external_id = await new_customer(system)
    clock.advance(2)
    if person_first:  # a person at Stripe too, whose event is not handled yet: a conflict
        await fake.update_async(external_id, params={"name": "X"})
    await patch(system, customer_id, name="B")
    event = await last_outbound(system)
    fake.system = system
    await outbound(system, event)
    await settle_all(system, rounds=3)
    here = (await system.customer(customer_id)).name
    assert here == fake.customers[external_id]["name"], (here, fake.customers[external_id]["name"])
    assert (await system.mapping(customer_id)).in_sync_with(await system.customer(customer_id))
