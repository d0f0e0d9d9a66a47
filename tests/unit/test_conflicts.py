"""Both sides changed the same field before either synced: the policy decides, both sides agree."""

import pytest

from application.commands import CreateCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.update import patch_customer
from domain.conflicts import ConflictPolicy
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem


@pytest.mark.parametrize(
    ("policy", "stripe_later", "winner"),
    [
        (ConflictPolicy.INTERNAL_WINS, True, "Catalog"),
        (ConflictPolicy.EXTERNAL_WINS, False, "Stripe"),
        (ConflictPolicy.LATEST_WINS, True, "Stripe"),
        (ConflictPolicy.LATEST_WINS, False, "Catalog"),
    ],
)
async def test_a_conflict_ends_with_the_policys_winner_on_both_sides(clock, policy, stripe_later, winner):
    system = EmbeddedSystem(Settings(stripe_webhook_secret=WEBHOOK_SECRET, conflict_policy=policy), clock=clock)
    customer = await create_customer(CreateCustomer("Ada"), system.uow_factory(), system.clock)
    await system.settle()
    external_id = (await system.mapping(customer.id)).external_id
    edits = [
        lambda: system.stripe.update_async(external_id, params={"name": "Stripe"}),
        lambda: patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "Catalog"}), system.uow_factory(), system.clock),
    ]
    for edit in (edits[1], edits[0]) if stripe_later else edits:
        await edit()
        clock.advance(2)
    # Deliver Stripe's webhook before our own update is pushed: a true conflict.
    await system.deliver_webhooks()
    await system.consume()
    await system.settle()
    assert (await system.customer(customer.id)).name == winner
    assert system.stripe.customers[external_id]["name"] == winner
    notes = [r.note or "" for r in await system.history(customer.id)]
    assert any(n.startswith(f"conflict on name: {policy.value}") for n in notes)
