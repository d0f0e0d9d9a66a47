from datetime import UTC, datetime

from domain.customer import CustomerData
from domain.mapping import CreateIntent

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def intent(key: str, name: str) -> CreateIntent:
    return CreateIntent(customer_id=1, system="stripe", idempotency_key=key, data=CustomerData(name, None), created_at=T0)


async def test_the_first_intent_stands_until_removed(uow_factory):
    async with uow_factory() as uow:
        await uow.customers.add(CustomerData("A"), T0)
        await uow.create_intents.add(intent("k1", "A"))
        await uow.create_intents.add(intent("k2", "B"))  # a later event: the first request is kept
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.create_intents.get(1, "stripe") == intent("k1", "A")
        assert await uow.create_intents.get(1, "salesforce") is None
        assert await uow.create_intents.get(2**70, "stripe") is None
        await uow.create_intents.remove(1, "stripe")
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.create_intents.get(1, "stripe") is None
