"""A person edits our new Stripe customer before its events are handled: linking our own create
from its event takes what the create sent as the baseline, so the edit is seen and synced under
every policy (found by the hostile review)."""

import pytest

from adapters.memory.stripe import InMemoryStripe
from adapters.stripe.events import parse_event
from application.commands import CreateCustomer
from application.customers.create import create_customer
from application.sync.inbound import sync_inbound
from domain.conflicts import ConflictPolicy
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem


class EditedWhileCreating(InMemoryStripe):
    """While our create's answer travels back, a person edits the email in the dashboard and the
    inbound worker (another process) handles that edit's webhook."""

    system = None

    async def create_async(self, params=None, options=None):
        made = await super().create_async(params=params, options=options)
        await self.update_async(made["id"], params={"email": "fixed@example.com"})  # a person, no key of ours
        ctx = await self.system.context()
        updated = parse_event(__import__("json").dumps(self.events[-1]).encode(), "stripe")
        await sync_inbound(updated, self.system.container.integrations(), ctx)
        return made


@pytest.mark.parametrize("policy", list(ConflictPolicy))
async def test_an_edit_made_at_stripe_right_after_our_create_is_not_lost(clock, policy):
    system = EmbeddedSystem(Settings(stripe_webhook_secret=WEBHOOK_SECRET, conflict_policy=policy), clock=clock)
    fake = EditedWhileCreating(clock)
    system.use_stripe(fake)
    fake.system = system
    customer = await create_customer(CreateCustomer("Ada", "typo@example.com"), system.uow_factory(), clock)
    clock.advance(3)
    await system.settle()
    mapping = await system.mapping(customer.id)
    there = fake.customers[mapping.external_id]["email"]
    here = (await system.customer(customer.id)).email
    assert here == there, (here, there, mapping.synced, mapping.in_sync_with(await system.customer(customer.id)))
