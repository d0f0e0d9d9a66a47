"""A create Stripe carried out but answered with a failure that does not say the data was refused
(a 500 with ``Stripe-Should-Retry: false``, a 409 for a concurrent request under the same key) is
looked up, never taken for a refusal: one customer on each side (found by the hostile review)."""

import pytest
import stripe

from adapters.memory.stripe import InMemoryStripe
from application.commands import CreateCustomer
from application.customers.create import create_customer
from application.sync.dead_letters import replay_dead_letters


class SavedFailureStripe(InMemoryStripe):
    def __init__(self, clock, status, headers):
        super().__init__(clock)
        self.first, self.status, self.headers = True, status, headers

    async def create_async(self, params=None, options=None):
        result = await super().create_async(params=params, options=options)  # executed
        if self.first:
            self.first = False
            raise stripe.APIError("An unknown error occurred", http_status=self.status, headers=self.headers)
        return result


@pytest.mark.parametrize(("status", "headers"), [(500, {"Stripe-Should-Retry": "false"}), (409, {})])
async def test_a_create_made_but_answered_with_an_ambiguous_failure_is_found_not_duplicated(system, clock, status, headers):
    system.use_stripe(SavedFailureStripe(clock, status, headers))
    await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), clock)
    await system.settle()
    await replay_dead_letters(None, system.uow_factory, system.container.publisher(), clock)
    await system.settle()
    async with system.uow_factory() as uow:
        catalog = await uow.customers.page(after_id=None, limit=10)
    assert (len(catalog), len(system.stripe.customers)) == (1, 1), [c.data for c in catalog]
