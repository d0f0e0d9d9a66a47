"""A Stripe customer whose metadata says internal_id=42 without our installation tag (a custsync from
before tags, any tool using that common key name) is imported, and its internal_id is left as it is:
never overwritten on a claim (found by the hostile review)."""

from application.commands import CreateCustomer
from application.customers.create import create_customer


async def test_a_bare_foreign_internal_id_is_not_overwritten(system):
    await create_customer(CreateCustomer("Ours"), system.uow_factory(), system.clock)
    await system.settle()
    stranger = await system.stripe.create_async(params={"name": "Theirs", "metadata": {"internal_id": "42"}})
    await system.settle()
    assert system.stripe.customers[stranger["id"]]["metadata"].get("internal_id") == "42", system.stripe.customers[
        stranger["id"]
    ]["metadata"]
