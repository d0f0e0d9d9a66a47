"""Our create landed but was answered 500, and a person deleted that new customer in Stripe before
the worker's retry: the deletion stands on both sides -- it is never undone by a second create,
whether or not its webhooks arrive (found by the hostile review)."""

import pytest

from application.commands import CreateCustomer
from application.customers.create import create_customer
from application.errors import RetryableIntegrationError
from application.sync.outbound import sync_outbound
from domain.messages import OUTBOUND_TOPIC, CustomerChanged, decode


@pytest.mark.parametrize("webhooks", ["delivered", "lost"])
async def test_a_stripe_deletion_of_our_unanswered_create_is_not_undone(system, webhooks):
    system.stripe.fail_next("create", 500, executed=True)
    customer = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    await system.relay()
    event = decode(system.messages(OUTBOUND_TOPIC)[-1].payload, CustomerChanged)
    with pytest.raises(RetryableIntegrationError):
        await sync_outbound(event, system.container.integrations(), await system.context())
    [made] = list(system.stripe.customers)
    await system.stripe.delete_async(made)  # a person deletes it in the dashboard
    if webhooks == "lost":
        system.delivered = len(system.stripe.events)
    await system.settle()  # the outbound retry runs here too
    assert system.stripe.customers == {} and system.stripe.deleted == {made}  # no second create
    assert (await system.customer(customer.id)).deleted
    assert (await system.mapping(customer.id)).external_id == made
