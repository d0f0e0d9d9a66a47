"""The look-up of a create whose answer was lost never filters by the fields we sent: a person may
have changed them in the dashboard meanwhile (found by the hostile review)."""

import pytest

from application.commands import CreateCustomer
from application.customers.create import create_customer
from application.errors import RetryableIntegrationError
from application.sync.outbound import sync_outbound
from domain.messages import OUTBOUND_TOPIC, CustomerChanged, decode


async def test_a_create_that_landed_is_found_even_after_its_email_was_changed_there(system):
    system.stripe.fail_next("create", 500, executed=True)  # made the customer, answered 500
    customer = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    await system.relay()
    event = decode(system.messages(OUTBOUND_TOPIC)[-1].payload, CustomerChanged)
    ctx, integrations = await system.context(), system.container.integrations()
    with pytest.raises(RetryableIntegrationError):
        await sync_outbound(event, integrations, ctx)
    [made] = list(system.stripe.customers)
    await system.stripe.update_async(made, params={"email": "ada@lovelace.dev"})  # a person fixes it
    await sync_outbound(event, integrations, ctx)  # the replayed 500, then the look-up
    await system.settle()
    async with system.uow_factory() as uow:
        catalog = await uow.customers.page(after_id=None, limit=10)
    assert list(system.stripe.customers) == [made] and [c.id for c in catalog] == [customer.id]
    assert (await system.mapping(customer.id)).external_id == made
