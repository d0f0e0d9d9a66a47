"""Stripe changes reach the catalog: once, without echoes, without resurrecting the deleted."""

import msgspec

from application.commands import CreateCustomer, DeleteCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.delete import delete_customer
from application.customers.update import patch_customer
from domain.customer import CustomerData
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC
from domain.sync import Direction


async def linked_customer(system, name="Ada", email="ada@example.com"):
    customer = await create_customer(CreateCustomer(name, email), system.uow_factory(), system.clock)
    await system.settle()
    return customer, (await system.mapping(customer.id)).external_id


async def test_a_stripe_side_change_reaches_the_catalog(system):
    customer, external_id = await linked_customer(system)
    await system.stripe.update_async(external_id, params={"email": "ada@lovelace.dev"})
    await system.settle()
    current = await system.customer(customer.id)
    assert current.data == CustomerData("Ada", "ada@lovelace.dev") and current.version == 2
    assert (await system.mapping(customer.id)).in_sync_with(current)


async def test_the_echo_of_our_own_write_changes_nothing_here(system):
    customer, _ = await linked_customer(system)
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "Ada L."}), system.uow_factory(), system.clock)
    await system.settle()  # our update went out and its customer.updated webhook came back
    assert (await system.customer(customer.id)).version == 2
    inbound = [r for r in await system.history(customer.id) if r.direction is Direction.INBOUND]
    assert len(inbound) == 2 and all(r.note == "no change (echo of a synced state)" for r in inbound)
    assert len(system.messages(OUTBOUND_TOPIC)) == 2  # the create and the update: nothing from the echoes


async def test_an_inbound_change_is_not_pushed_back_to_stripe(system):
    _customer, external_id = await linked_customer(system)
    await system.stripe.update_async(external_id, params={"name": "From the dashboard"})
    calls = len(system.stripe.calls)
    await system.settle()
    # One read to confirm the current state; nothing written back.
    assert system.stripe.calls[calls:] == [("retrieve", None)]
    [event] = [msgspec.json.decode(m.payload) for m in system.messages(OUTBOUND_TOPIC)][-1:]
    assert event["origin"] == "stripe"


async def test_a_duplicated_webhook_is_applied_once(system):
    customer, external_id = await linked_customer(system)
    await system.stripe.update_async(external_id, params={"name": "Once"})
    await system.settle()
    system.delivered -= 1  # Stripe delivers the same event again
    await system.settle()
    assert (await system.customer(customer.id)).version == 2
    assert len([r for r in await system.history(customer.id) if r.direction is Direction.INBOUND]) == 2


async def test_a_customer_created_in_stripe_appears_once_and_gets_our_id(system):
    created = await system.stripe.create_async(params={"name": "Grace", "metadata": {"source": "dashboard"}})
    await system.settle()
    system.delivered = 0  # and every webhook is delivered a second time
    await system.settle()
    async with system.uow_factory() as uow:
        mapping = await uow.mappings.by_external_id("stripe", created["id"])
        everyone = await uow.customers.page(after_id=None, limit=10)
    assert [c.data for c in everyone] == [CustomerData("Grace", None)]
    assert system.stripe.customers[created["id"]]["metadata"] == await system.tags(mapping.customer_id, source="dashboard")
    assert len(system.stripe.customers) == 1


async def test_a_customer_without_name_or_email_is_mirrored(system):
    await system.stripe.create_async(params={})
    await system.settle()
    async with system.uow_factory() as uow:
        [customer] = await uow.customers.page(after_id=None, limit=10)
    assert customer.data == CustomerData(None, None)


async def test_the_echo_of_our_create_arriving_before_the_mapping_links_instead_of_duplicating(system):
    create_in_stripe = system.stripe.create_async

    async def create_then_race_the_webhook(*args, **kwargs):
        created = await create_in_stripe(*args, **kwargs)
        # Stripe's webhook is handled while the worker still waits for this response.
        await system.deliver_webhooks()
        await system.new_consumer(topics=(INBOUND_TOPIC,)).run_once(system.stopping)
        return created

    system.stripe.create_async = create_then_race_the_webhook
    customer = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    await system.settle()
    async with system.uow_factory() as uow:
        assert [c.id for c in await uow.customers.page(after_id=None, limit=10)] == [customer.id]
        mapping = await uow.mappings.get(customer.id, "stripe")
    assert list(system.stripe.customers) == [mapping.external_id]
    assert mapping.in_sync_with(await system.customer(customer.id))


async def test_a_delete_in_stripe_deletes_here_and_a_late_update_does_not_resurrect(system):
    customer, external_id = await linked_customer(system)
    await system.stripe.update_async(external_id, params={"name": "Late"})
    update_event = system.stripe.events[-1]
    await system.stripe.delete_async(external_id)
    system.stripe.events[-2:] = [system.stripe.events[-1], update_event]  # delivered out of order
    await system.settle()
    current = await system.customer(customer.id)
    assert current.deleted and current.data == CustomerData()
    notes = [r.note or "" for r in await system.history(customer.id)]
    assert any(n.startswith("customer is deleted here: ignored") for n in notes)


async def test_a_catalog_delete_racing_a_stripe_update_ends_deleted_on_both_sides(system):
    customer, external_id = await linked_customer(system)
    await system.stripe.update_async(external_id, params={"name": "Racing"})
    await delete_customer(DeleteCustomer(customer_id=customer.id), system.uow_factory(), system.clock)
    await system.settle()
    assert (await system.customer(customer.id)).deleted
    assert external_id in system.stripe.deleted


async def test_a_delete_of_a_customer_we_never_knew_is_ignored(system):
    created = await system.stripe.create_async(params={"name": "Ghost"})
    system.delivered = len(system.stripe.events)  # we never heard of it
    await system.stripe.delete_async(created["id"])
    await system.settle()
    async with system.uow_factory() as uow:
        assert await uow.customers.page(after_id=None, limit=10) == []


async def test_inbound_changes_travel_keyed_by_external_id(system):
    _, external_id = await linked_customer(system)
    assert {m.key for m in system.messages(INBOUND_TOPIC)} == {f"stripe:{external_id}"}


async def test_a_stripe_customer_deleted_before_we_tag_it_is_deleted_here_without_a_dead_letter(system):
    created = await system.stripe.create_async(params={"name": "Brief"})
    await system.deliver_webhooks()
    await system.consume()  # the customer exists here; the worker has yet to write our id back
    await system.stripe.delete_async(created["id"])
    system.delivered = len(system.stripe.events)  # and the deletion's webhook is late
    await system.settle()
    async with system.uow_factory() as uow:
        mapping = await uow.mappings.by_external_id("stripe", created["id"])
        assert (await uow.customers.get(mapping.customer_id)).deleted
    assert system.messages("sync.outbound.dlq") == []
