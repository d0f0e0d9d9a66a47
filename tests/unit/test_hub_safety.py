"""The hub's safety with two integrations, message by message: each test replays an exact
interleaving found by a hostile review, where a Salesforce answer that could mean two things once
overwrote, duplicated or deleted customer data. The rig calls the handlers one message at a time,
on a FakeClock, so the interleaving is the test's, not the scheduler's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.memory.clock import FakeClock
from application.commands import CreateCustomer, DeleteCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.delete import delete_customer
from application.customers.update import patch_customer
from application.errors import AmbiguousExport, RetryableIntegrationError
from application.sync.catchup import catch_up_once
from application.sync.reconcile import Reconciler, start_here
from application.sync.resync import Direction, resync
from domain.conflicts import ConflictPolicy
from domain.customer import CustomerData
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC, ChangeKind, CustomerChanged, decode, encode, new_event_id
from domain.sync import SyncStatus
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem


class Hub:
    """Catalog, Stripe and Salesforce in one process; each group's handler called by hand."""

    def __init__(self, policy: str = "latest_wins") -> None:
        self.clock = FakeClock(datetime(2026, 1, 1, 10, 0, 0, 100_000, tzinfo=UTC))
        self.system = EmbeddedSystem(
            Settings(
                stripe_webhook_secret=WEBHOOK_SECRET,
                integrations="stripe,salesforce",
                conflict_policy=ConflictPolicy(policy),
            ),
            clock=self.clock,
        )
        c = self.container = self.system.container
        self.org = c.salesforce_org()
        self.integrations = c.integrations()
        self.out = {s: c.outbound_handler(integrations={s: self.integrations[s]}) for s in self.integrations}
        self.inbound = c.inbound_handler()
        self._taken: set[int] = set()

    def new(self, topic: str):
        """The messages on ``topic`` not taken yet."""
        fresh = [m for m in self.system.messages(topic) if id(m) not in self._taken]
        self._taken |= {id(m) for m in fresh}
        return fresh

    async def create(self, name, email):
        return await create_customer(CreateCustomer(name, email), self.system.uow_factory(), self.clock)

    async def patch(self, customer_id, **changes):
        return await patch_customer(
            PatchCustomer(customer_id=customer_id, changes=changes), self.system.uow_factory(), self.clock
        )

    async def poll(self):
        return await catch_up_once(
            self.integrations["salesforce"], self.container.uow_factory(), self.container.publisher(), self.clock, "poller", 120.0
        )

    def contact(self, contact_id):
        return self.org.shown(self.org.contacts[contact_id])

    def stripe_email(self, stripe_id):
        return self.system.stripe.customers[stripe_id]["email"]

    async def linked(self, name: str, email: str):
        """A customer made here, synced to both systems and its creation read back from Salesforce:
        (customer, Stripe id, Contact id); nothing left on the topics for the test to take."""
        await self.poll()
        customer = await self.create(name, email)
        await self.system.settle()
        self.clock.advance(1)
        await self.poll()
        await self.system.settle()
        self.new(OUTBOUND_TOPIC)
        self.new(INBOUND_TOPIC)
        return (
            customer,
            (await self.system.mapping(customer.id, "stripe")).external_id,
            (await self.system.mapping(customer.id, "salesforce")).external_id,
        )

    async def salesforce_create_fails(self, name: str, email: str, *, executed: bool = False):
        """A customer made here: Stripe takes it, Salesforce's first create attempt fails (503;
        ``executed``: it landed all the same). Returns the customer and its create message."""
        await self.poll()
        customer = await self.create(name, email)
        await self.system.relay()
        [created] = self.new(OUTBOUND_TOPIC)
        await self.out["stripe"].handle(created.payload)
        self.org.fail_next("create", 503, executed=executed)
        with pytest.raises(RetryableIntegrationError):
            await self.out["salesforce"].handle(created.payload)
        return customer, created

    async def reconcile(self, system):
        ctx = await self.system.context()
        run, _ = await start_here(ctx, system, "test", dry_run=False, match_by=None, trigger="cli")
        return await Reconciler(run, self.integrations[system], self.integrations, ctx).execute()


async def test_reading_back_our_own_late_create_never_puts_its_old_email_back():
    # The e2e's once-seen failure: a create retried after an outage lands with the email the
    # customer had before an edit; catch-up lists that row before the edit's PATCH; applied after
    # it, the row was taken for a person's change, newer by Salesforce's clock, and won.
    hub = Hub()
    customer, created = await hub.salesforce_create_fails("Ada Lovelace", "old@example.com")
    hub.clock.advance(0.4)
    await hub.patch(customer.id, email="new@example.com")
    await hub.system.relay()
    [edited] = hub.new(OUTBOUND_TOPIC)
    await hub.out["stripe"].handle(edited.payload)
    hub.clock.advance(0.7)
    await hub.out["salesforce"].handle(created.payload)  # lands with old@
    await hub.poll()
    read_back = hub.new(INBOUND_TOPIC)
    assert read_back and all(b"old@example.com" in m.payload for m in read_back)
    hub.clock.advance(0.05)
    await hub.out["salesforce"].handle(edited.payload)  # PATCH new@
    hub.clock.advance(0.5)
    for message in read_back:
        await hub.inbound.handle(message.payload)
    await hub.system.settle()

    contact_id = (await hub.system.mapping(customer.id, "salesforce")).external_id
    stripe_id = (await hub.system.mapping(customer.id, "stripe")).external_id
    assert (await hub.system.customer(customer.id)).email == "new@example.com"
    assert hub.contact(contact_id)["Email"] == hub.stripe_email(stripe_id) == "new@example.com"


async def test_a_create_never_writes_over_a_live_contact_that_holds_our_id_without_our_create_key():
    # A catalog restored from a backup reissues id 2; the Contact of the old customer 2 is a person's.
    hub = Hub()
    installation = await hub.system.installation()
    grace = hub.org.create(
        FirstName="Grace",
        LastName="Hopper",
        Email="grace@navy.example",
        Custsync_Id__c=f"{installation}-2",
        Custsync_Create__c=f"custsync-{installation}-create-old",
    )
    await hub.create("Someone Else", "someone@example.com")
    ada = await hub.create("Ada Lovelace", "ada@example.com")
    await hub.system.settle()

    held = hub.contact(grace["Id"])
    assert (held["FirstName"], held["LastName"], held["Email"]) == ("Grace", "Hopper", "grace@navy.example")
    assert await hub.system.mapping(ada.id, "salesforce") is None
    [record] = [r for r in await hub.system.history(ada.id) if r.system == "salesforce"]
    assert (
        record.status is SyncStatus.DEAD and "already holds" in record.last_error and "nothing was written" in record.last_error
    )
    assert len(hub.org.live()) == 2  # Grace's, and the other customer's: no second Contact made on a guess


async def test_a_create_repeated_after_its_first_landed_keeps_what_a_person_changed_meanwhile():
    hub = Hub()
    customer, created = await hub.salesforce_create_fails("Ada Lovelace", "old@example.com", executed=True)
    [contact] = hub.org.live()
    hub.clock.advance(2)
    hub.org.edit(contact["Id"], Email="person@example.com")
    hub.clock.advance(2)
    await hub.out["salesforce"].handle(created.payload)  # the retry: finds ours, writes nothing
    assert hub.contact(contact["Id"])["Email"] == "person@example.com"
    hub.clock.advance(2)
    await hub.poll()
    await hub.system.settle()
    stripe_id = (await hub.system.mapping(customer.id, "stripe")).external_id
    assert (await hub.system.customer(customer.id)).email == "person@example.com"
    assert hub.stripe_email(stripe_id) == hub.contact(contact["Id"])["Email"] == "person@example.com"


async def test_a_create_repeated_after_a_person_merged_its_contact_away_makes_no_second_one():
    hub = Hub()
    customer, _created = await hub.salesforce_create_fails("Ada Lovelace", "ada@example.com", executed=True)
    [ours] = hub.org.live()
    survivor = hub.org.create(FirstName="Ada", LastName="Lovelace", Email="ada@example.com")
    hub.clock.advance(2)
    hub.org.merge(survivor["Id"], ours["Id"])  # an admin merges the duplicate away
    await hub.system.settle()
    assert [c["Id"] for c in hub.org.live()] == [survivor["Id"]]  # no new Contact made on a guess
    assert await hub.system.mapping(customer.id, "salesforce") is None
    [record] = [r for r in await hub.system.history(customer.id) if r.system == "salesforce"]
    assert record.status is SyncStatus.DEAD and "merged into" in record.last_error


async def test_two_states_of_a_contact_in_one_stamp_are_two_changes():
    hub = Hub()
    hub.org._now = lambda: hub.clock.now().replace(microsecond=0)  # stamps in whole seconds, as some orgs show them
    await hub.poll()
    made = hub.org.create(FirstName="Grace", LastName="Hopper", Email="grace@example.com")
    hub.clock.advance(0.2)
    await hub.poll()
    await hub.system.settle()
    hub.clock.advance(0.3)  # the same second: the same SystemModstamp
    hub.org.edit(made["Id"], Email="grace.hopper@navy.example")
    hub.clock.advance(5)
    await hub.poll()
    await hub.system.settle()
    async with hub.system.uow_factory() as uow:
        mapping = await uow.mappings.by_external_id("salesforce", made["Id"])
    assert (await hub.system.customer(mapping.customer_id)).email == "grace.hopper@navy.example"


async def test_a_contact_restored_from_the_recycle_bin_before_its_deletion_is_handled_deletes_nothing():
    hub = Hub()
    customer, stripe_id, contact_id = await hub.linked("Ada Lovelace", "ada@example.com")
    hub.clock.advance(1)
    hub.org.delete(contact_id)  # by mistake...
    await hub.poll()
    listed = hub.new(INBOUND_TOPIC)
    hub.clock.advance(1)
    hub.org.undelete(contact_id)  # ...and restored before the worker took the deletion
    for message in listed:
        await hub.inbound.handle(message.payload)
    await hub.system.settle()
    assert not (await hub.system.customer(customer.id)).deleted
    assert stripe_id not in hub.system.stripe.deleted and not hub.contact(contact_id)["IsDeleted"]


async def test_a_deletion_still_in_the_recycle_bin_is_carried_to_the_catalog_and_stripe():
    hub = Hub()
    await hub.poll()
    customer = await hub.create("Ada Lovelace", "ada@example.com")
    await hub.system.settle()
    contact_id = (await hub.system.mapping(customer.id, "salesforce")).external_id
    stripe_id = (await hub.system.mapping(customer.id, "stripe")).external_id
    hub.clock.advance(1)
    hub.org.delete(contact_id)
    hub.clock.advance(1)
    await hub.poll()
    await hub.system.settle()
    assert (await hub.system.customer(customer.id)).deleted and stripe_id in hub.system.stripe.deleted


@pytest.mark.parametrize("policy", ["latest_wins", "internal_wins", "external_wins"])
async def test_a_push_to_salesforce_asked_by_an_operator_is_no_push_to_stripe(policy):
    hub = Hub(policy)
    customer = await hub.create("Ada Lovelace", "ada@example.com")
    await hub.system.settle()
    stripe_id = (await hub.system.mapping(customer.id, "stripe")).external_id
    hub.system.webhooks = False  # a Stripe dashboard edit whose event has not come yet
    hub.clock.advance(2)
    await hub.system.stripe.update_async(stripe_id, params={"email": "ada@lovelace.org"})
    await resync(
        customer.id, "salesforce", Direction.PUSH, hub.integrations, hub.system.uow_factory, hub.container.publisher(), hub.clock
    )
    await hub.system.settle()
    assert hub.stripe_email(stripe_id) == "ada@lovelace.org"


async def test_a_salesforce_export_never_creates_a_stripe_customer_held_as_ambiguous():
    hub = Hub()
    await hub.system.stripe.create_async(params={"name": "Ada", "email": "ada@example.com"})
    async with hub.system.uow_factory() as uow:
        await uow.customers.add(CustomerData("Ada", "ada@example.com"), hub.clock.now())
        await uow.commit()
    hub.system.delivered = len(hub.system.stripe.events)
    hub.clock.advance(1)
    assert (await hub.reconcile("stripe")).counts["ambiguous"] == 1  # held for a person in Stripe
    await hub.system.settle()
    await hub.reconcile("salesforce")  # Salesforce's first sync exports Ada there (forced, for Salesforce)
    await hub.system.settle()
    assert sum(1 for c in hub.system.stripe.customers.values() if c.get("email") == "ada@example.com") == 1
    assert len(hub.org.live()) == 1


@pytest.mark.parametrize("policy", ["latest_wins", "internal_wins", "external_wins"])
async def test_a_person_s_edit_under_a_later_write_of_ours_is_still_a_change_of_theirs(policy):
    # The row's last modifier is our user, yet its name is a person's: reading our writes back as
    # ours must not hide what a person changed before them in another field.
    hub = Hub(policy)
    customer, stripe_id, contact_id = await hub.linked("Ada Lovelace", "ada@example.com")
    hub.clock.advance(1)
    hub.org.edit(contact_id, FirstName="Augusta Ada")  # a person, not polled yet
    hub.clock.advance(1)
    await hub.patch(customer.id, email="ada@lovelace.org")  # our PATCH lands after it
    await hub.system.relay()
    for message in hub.new(OUTBOUND_TOPIC):
        for system in ("stripe", "salesforce"):
            await hub.out[system].handle(message.payload)
    assert hub.contact(contact_id)["LastModifiedById"] == hub.org.integration_user
    hub.clock.advance(1)
    await hub.poll()
    await hub.system.settle()
    stripe_id = (await hub.system.mapping(customer.id, "stripe")).external_id
    held = hub.contact(contact_id)
    assert (await hub.system.customer(customer.id)).data == CustomerData("Augusta Ada Lovelace", "ada@lovelace.org")
    assert (held["FirstName"], held["Email"]) == ("Augusta Ada", "ada@lovelace.org")
    assert hub.system.stripe.customers[stripe_id]["name"] == "Augusta Ada Lovelace"


async def test_a_person_s_newer_edit_under_a_write_of_ours_wins_a_latest_wins_conflict():
    # Both sides changed the email; ours reached Salesforce as a write of the name only (the email
    # held as a conflict), so the row's last writer is us. The person's edit still has a time.
    hub = Hub("latest_wins")
    customer, stripe_id, contact_id = await hub.linked("Ada Lovelace", "ada@example.com")
    hub.clock.advance(5)
    await hub.patch(customer.id, name="Ada King", email="catalog@example.com")
    await hub.system.relay()
    [edited] = hub.new(OUTBOUND_TOPIC)
    await hub.out["stripe"].handle(edited.payload)
    hub.clock.advance(5)
    hub.org.edit(contact_id, Email="person@example.com")  # newer than the catalog's
    hub.clock.advance(5)
    await hub.out["salesforce"].handle(edited.payload)  # writes the name; the email waits for the person's time
    assert hub.contact(contact_id)["LastModifiedById"] == hub.org.integration_user
    hub.clock.advance(5)
    await hub.poll()
    await hub.system.settle()
    assert (await hub.system.customer(customer.id)).data == CustomerData("Ada King", "person@example.com")
    assert hub.contact(contact_id)["Email"] == hub.stripe_email(stripe_id) == "person@example.com"


async def test_a_forced_event_from_before_forced_for_is_forced_for_no_system():
    # Read again by the group of an integration enabled later: it must keep that system's holds.
    hub = Hub()
    hub.org.create(FirstName="Ada", LastName="Lovelace", Email="ada@example.com")  # a person's, unlinked
    async with hub.system.uow_factory() as uow:
        ada = await uow.customers.add(CustomerData("Ada Lovelace", "ada@example.com"), hub.clock.now())
        await uow.commit()
    hub.clock.advance(1)
    assert (await hub.reconcile("salesforce")).counts["ambiguous"] == 1
    legacy = encode(
        CustomerChanged(
            event_id=new_event_id(),
            customer_id=ada.id,
            kind=ChangeKind.CREATED,
            version=ada.version,
            data=ada.data,
            occurred_at=ada.updated_at,
            forced=True,
        )
    )
    assert not decode(legacy, CustomerChanged).forced_at("salesforce")
    with pytest.raises(AmbiguousExport):
        await hub.out["salesforce"].handle(legacy)
    assert len(hub.org.live()) == 1


async def test_the_echo_of_our_own_deletion_costs_no_call():
    hub = Hub()
    customer, _stripe_id, _contact_id = await hub.linked("Ada Lovelace", "ada@example.com")
    await delete_customer(DeleteCustomer(customer_id=customer.id), hub.system.uow_factory(), hub.clock)
    await hub.system.settle()
    assert hub.contact((await hub.system.mapping(customer.id, "salesforce")).external_id)["IsDeleted"]
    before = len(hub.org.calls)
    hub.clock.advance(1)
    assert (await hub.poll()).published == 1  # our deletion, listed back
    polled = len(hub.org.calls)
    await hub.system.settle()
    assert hub.org.calls[polled:] == [], hub.org.calls[before:]  # taken as settled: no re-fetch
