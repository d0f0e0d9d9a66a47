"""Finding 4: ``metadata.internal_id`` is a claim, not a proof. Shared test accounts, copied data and
a second installation all carry ids of ours; none may delete, merge or drop anything."""

import pytest

from adapters.memory.stripe import InMemoryStripe
from application.commands import CreateCustomer, DeleteCustomer
from application.customers.create import create_customer
from application.customers.delete import delete_customer
from domain.customer import CustomerData
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem


async def catalog(system):
    async with system.uow_factory() as uow:
        return await uow.customers.page(after_id=None, limit=100)


async def test_a_stranger_claiming_a_customer_deleted_before_it_synced_is_never_deleted_in_stripe(system):
    gone = await create_customer(CreateCustomer("Gone"), system.uow_factory(), system.clock)
    await delete_customer(DeleteCustomer(customer_id=gone.id), system.uow_factory(), system.clock)
    stranger = await system.stripe.create_async(params={"name": "Stranger", "metadata": {"internal_id": str(gone.id)}})
    await system.settle()
    assert stranger["id"] in system.stripe.customers and not system.stripe.deleted  # deleting cancels subscriptions
    [imported] = await catalog(system)
    assert imported.id != gone.id and imported.data == CustomerData("Stranger")


@pytest.mark.parametrize("claim", ["{id}", "\uff11"])  # our id, or a look-alike: a fullwidth digit one
async def test_a_stranger_claiming_an_unsynced_customer_is_imported_and_our_create_still_happens(system, claim):
    ours = await create_customer(CreateCustomer("Ours", "ours@example.com"), system.uow_factory(), system.clock)
    assert ours.id == 1
    stranger = await system.stripe.create_async(
        params={"name": "Stranger", "metadata": {"internal_id": claim.format(id=ours.id)}}
    )
    await system.deliver_webhooks()
    await system.consume()  # the stranger's event is handled before our create goes out
    await system.settle()
    everyone = await catalog(system)
    assert [c.data.name for c in everyone] == ["Ours", "Stranger"]  # imported, not merged
    ours_in_stripe = (await system.mapping(ours.id)).external_id
    assert ours_in_stripe != stranger["id"]
    assert system.stripe.customers[ours_in_stripe]["name"] == "Ours"  # our create was not dropped
    assert system.stripe.customers[stranger["id"]]["name"] == "Stranger"  # nor the stranger overwritten
    if claim == "{id}":
        notes = [r.note or "" for c in everyone for r in await system.history(c.id)]
        assert any(f"claims catalog id {ours.id}" in n and "not merged" in n for n in notes), notes


async def test_two_installations_sharing_one_account_never_touch_each_others_customers(clock):
    shared = InMemoryStripe(clock)
    a = EmbeddedSystem(Settings(stripe_webhook_secret=WEBHOOK_SECRET), clock=clock)
    b = EmbeddedSystem(Settings(stripe_webhook_secret=WEBHOOK_SECRET), clock=clock)
    a.use_stripe(shared)
    b.use_stripe(shared)
    made_by_a = await create_customer(CreateCustomer("Made by A"), a.uow_factory(), clock)
    made_by_b = await create_customer(CreateCustomer("Made by B"), b.uow_factory(), clock)
    assert made_by_a.id == made_by_b.id == 1  # the same catalog id on both sides
    for _ in range(3):  # both endpoints receive every event of the account
        await a.settle()
        await b.settle()
    assert len(shared.customers) == 2 and not shared.deleted
    tags = {c["name"]: (c["metadata"]["custsync_installation"], c["metadata"]["internal_id"]) for c in shared.customers.values()}
    assert tags == {"Made by A": (await a.installation(), "1"), "Made by B": (await b.installation(), "1")}
    for system in (a, b):  # each imported the other's customer as a new one of its own
        assert sorted(c.data.name for c in await catalog(system)) == ["Made by A", "Made by B"]
