from application.commands import CreateCustomer
from application.customers.create import create_customer
from tests.support.system import tagged


async def test_customer_created_through_the_catalog_gets_a_stripe_twin(system):
    customer = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    await system.settle()
    mapping = await system.mapping(customer.id)
    assert mapping is not None and mapping.external_id.startswith("cus_")
    twin = system.stripe.customers[mapping.external_id]
    assert (twin["name"], twin["email"], tagged(twin["metadata"])) == ("Ada", "ada@example.com", await system.tags(customer.id))
