"""Finding 7: under ``latest_wins`` the winner is a function of the changes' times only, never of
the order their events are delivered in or of which side the worker happens to handle first."""

import pytest

from application.commands import CreateCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.update import patch_customer
from domain.conflicts import ConflictPolicy
from domain.messages import INBOUND_TOPIC
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem

ORDERS = ["as_made", "reversed"]
FIRST = ["our_push_first", "stripe_events_first"]


async def scenario(clock, steps, order: str, first: str) -> tuple[str, str]:
    """Run ``steps`` (the changes, at their times, nothing synced in between), then deliver Stripe's
    events in ``order`` with the worker starting on ``first``; return (catalog, Stripe) names."""
    system = EmbeddedSystem(
        Settings(stripe_webhook_secret=WEBHOOK_SECRET, conflict_policy=ConflictPolicy.LATEST_WINS), clock=clock
    )
    customer = await create_customer(CreateCustomer("A", "a@example.com"), system.uow_factory(), clock)
    await system.settle()
    external_id = (await system.mapping(customer.id)).external_id
    start = len(system.stripe.events)
    for at, side, change in steps:
        clock.advance(at)
        if side == "stripe":
            await system.stripe.update_async(external_id, params=change)
        else:
            await patch_customer(PatchCustomer(customer_id=customer.id, changes=change), system.uow_factory(), clock)
    clock.advance(5)
    made = system.stripe.events[start:]
    system.stripe.events[start:] = made if order == "as_made" else made[::-1]
    if first == "stripe_events_first":
        await system.deliver_webhooks()
        await system.new_consumer(topics=(INBOUND_TOPIC,)).run_once(system.stopping)
    await system.settle()
    return (await system.customer(customer.id)).name, system.stripe.customers[external_id]["name"]


@pytest.mark.parametrize("first", FIRST)
@pytest.mark.parametrize("order", ORDERS)
async def test_a_later_stripe_change_wins_over_ours_whatever_the_order(clock, order, first):
    # Stripe sets C at t+10, the catalog B at t+12, Stripe D at t+15: D is the latest change.
    steps = [(10, "stripe", {"name": "C"}), (2, "catalog", {"name": "B"}), (3, "stripe", {"name": "D"})]
    assert await scenario(clock, steps, order, first) == ("D", "D")


@pytest.mark.parametrize("first", FIRST)
@pytest.mark.parametrize("order", ORDERS)
async def test_a_metadata_only_event_does_not_date_an_older_change(clock, order, first):
    # Stripe sets C at t+10, the catalog B at t+12, then someone edits only metadata at t+13:
    # Stripe's name change is still the older one, so B wins.
    steps = [(10, "stripe", {"name": "C"}), (2, "catalog", {"name": "B"}), (1, "stripe", {"metadata": {"note": "x"}})]
    assert await scenario(clock, steps, order, first) == ("B", "B")


@pytest.mark.parametrize("first", FIRST)
@pytest.mark.parametrize("order", ORDERS)
async def test_changed_back_and_forth_over_there_the_last_change_counts(clock, order, first):
    # Stripe: A -> X at t+1, the catalog B at t+2, Stripe X -> A at t+3: Stripe's A is the latest.
    steps = [(1, "stripe", {"name": "X"}), (1, "catalog", {"name": "B"}), (1, "stripe", {"name": "A"})]
    assert await scenario(clock, steps, order, first) == ("A", "A")
