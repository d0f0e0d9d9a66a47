"""Finding 1: a 404 from Stripe is not a deletion. Stripe keeps deleted customers retrievable with
``deleted: true``; a 404 means another account, another mode or a restored database."""

from adapters.memory.stripe import InMemoryStripe
from application.commands import PatchCustomer
from application.customers.queries import get_customer
from application.customers.update import patch_customer
from domain.customer import CustomerData
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC, dead_letter_topic
from domain.sync import SyncStatus
from tests.unit.safety.helpers import new_customer


async def test_another_accounts_key_never_deletes_a_catalog_customer(system):
    customer_id, _ = await new_customer(system, "Ada", "ada@example.com")
    system.use_stripe(InMemoryStripe(system.clock))  # STRIPE_SECRET_KEY switched to another account
    await patch_customer(PatchCustomer(customer_id=customer_id, changes={"name": "Ada L."}), system.uow_factory(), system.clock)
    await system.settle()
    after = await system.customer(customer_id)
    assert not after.deleted and after.data == CustomerData("Ada L.", "ada@example.com")
    assert system.stripe.customers == {}  # nothing was written to the other account either
    view = await get_customer(customer_id, system.uow_factory(), ["stripe"])
    [link] = view.links
    assert link.sync_status == "broken" and "404" in link.broken
    notes = [(r.status, r.last_error or "") for r in await system.history(customer_id)]
    assert any(status is SyncStatus.DEAD and "marked broken" in error for status, error in notes)
    assert len(system.messages(dead_letter_topic(OUTBOUND_TOPIC))) == 1


async def test_an_event_whose_re_fetch_answers_404_breaks_the_link_and_changes_nothing(system):
    customer_id, external_id = await new_customer(system, "Ada", "ada@example.com")
    await system.stripe.update_async(external_id, params={"name": "Changed there"})
    pending = system.stripe.events[system.delivered :]
    system.use_stripe(InMemoryStripe(system.clock))  # the re-fetch goes to an account without it
    for event in pending:
        system.stripe.events.append(event)
    await system.settle()
    after = await system.customer(customer_id)
    assert not after.deleted and after.data == CustomerData("Ada", "ada@example.com")
    assert (await system.mapping(customer_id)).broken
    assert len(system.messages(dead_letter_topic(INBOUND_TOPIC))) == 1


async def test_a_deletion_is_taken_only_from_a_deletion_event_or_a_deleted_re_fetch(system):
    customer_id, external_id = await new_customer(system, "Ada", "ada@example.com")
    await system.stripe.delete_async(external_id)
    await system.settle()
    assert (await system.customer(customer_id)).deleted  # customer.deleted: final
    other_id, other_external_id = await new_customer(system, "Grace", "grace@example.com")
    await system.stripe.delete_async(other_external_id)
    system.stripe.events[-1]["type"] = "customer.updated"  # an update event whose object says deleted
    await system.settle()
    # Re-fetched: Stripe answers ``deleted: true``, so it is a deletion -- proven, not read off the event.
    assert (await system.customer(other_id)).deleted
    notes = [r.note or "" for r in await system.history(other_id)]
    assert any("re-fetched" in n for n in notes)


async def test_a_broken_link_heals_when_the_right_account_is_back(system):
    customer_id, _ = await new_customer(system, "Ada", "ada@example.com")
    right = system.stripe
    system.use_stripe(InMemoryStripe(system.clock))
    await patch_customer(PatchCustomer(customer_id=customer_id, changes={"name": "Ada L."}), system.uow_factory(), system.clock)
    await system.settle()
    assert (await system.mapping(customer_id)).broken
    system.use_stripe(right)
    system.delivered = len(right.events)
    await patch_customer(
        PatchCustomer(customer_id=customer_id, changes={"email": "ada@lovelace.dev"}), system.uow_factory(), system.clock
    )
    await system.settle()
    mapping = await system.mapping(customer_id)
    assert mapping.broken is None and mapping.in_sync_with(await system.customer(customer_id))
    assert (right.customers[mapping.external_id]["name"], right.customers[mapping.external_id]["email"]) == (
        "Ada L.",
        "ada@lovelace.dev",
    )
