"""The storage that the safety rules rely on, on every backend: guarded mapping writes (no lost
baseline), what each side's changes' times are, broken links, the installation id, bindings."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from domain.binding import AccountBinding, ExternalAccount
from domain.customer import CustomerData
from domain.errors import ConcurrentUpdate
from domain.mapping import ExternalMapping, FieldWrite

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def mapping(customer_id: int) -> ExternalMapping:
    return ExternalMapping(
        customer_id=customer_id, system="stripe", external_id="cus_1", synced=CustomerData("A"), synced_version=1, synced_at=T0
    )


async def linked(uow_factory) -> ExternalMapping:
    async with uow_factory() as uow:
        customer = await uow.customers.add(CustomerData("A"), T0)
        stored = await uow.mappings.save(mapping(customer.id))
        await uow.commit()
    return stored


async def test_a_mapping_written_from_a_stale_read_is_refused_not_lost(uow_factory):
    # The worker's shape: read in one unit of work, call Stripe, store in another. An inbound
    # change that saved a new baseline in between must not be overwritten by the older read.
    read = await linked(uow_factory)
    async with uow_factory() as inbound:
        fresh = await inbound.mappings.get(read.customer_id, "stripe")
        await inbound.mappings.save(fresh.rebased(CustomerData("From Stripe"), T0))
        await inbound.commit()
    with pytest.raises(ConcurrentUpdate):
        async with uow_factory() as outbound:
            await outbound.mappings.save(read.rebased(CustomerData("Stale"), T0))
    async with uow_factory() as uow:
        assert (await uow.mappings.get(read.customer_id, "stripe")).synced == CustomerData("From Stripe")


async def test_two_first_links_of_one_customer_cannot_both_win(uow_factory):
    async with uow_factory() as uow:
        customer = await uow.customers.add(CustomerData("A"), T0)
        await uow.commit()
    async with uow_factory() as uow:
        await uow.mappings.save(mapping(customer.id))
        await uow.commit()
    with pytest.raises(ConcurrentUpdate):
        async with uow_factory() as uow:
            await uow.mappings.save(mapping(customer.id))  # version 0: "not linked yet", no longer true


async def test_each_save_moves_the_version_and_returns_what_is_stored(uow_factory):
    first = await linked(uow_factory)
    async with uow_factory() as uow:
        second = await uow.mappings.save(first.rebased(CustomerData("B"), T0))
        await uow.commit()
    assert second.version == first.version + 1
    async with uow_factory() as uow:
        assert await uow.mappings.get(first.customer_id, "stripe") == second


async def test_external_change_times_and_a_broken_link_round_trip(uow_factory):
    stored = await linked(uow_factory)
    told = (
        stored.with_external_writes(
            {
                "name": FieldWrite("Grace", T0 + timedelta(seconds=5), tied=("Ada", None)),
                "email": FieldWrite(None, T0),
            }
        )
        .marked_broken("stripe does not know cus_1 (404)")
        .sending({"name": "Ada L.", "email": None}, T0 + timedelta(seconds=9))
    )
    async with uow_factory() as uow:
        saved = await uow.mappings.save(told)
        await uow.commit()
    async with uow_factory() as uow:
        again = await uow.mappings.get(stored.customer_id, "stripe")
    assert again == saved
    assert again.external_writes["name"] == FieldWrite("Grace", T0 + timedelta(seconds=5), tied=("Ada", None))
    assert again.broken == "stripe does not know cus_1 (404)"
    assert again.sent == told.sent and again.holds_our_write("email", None) and again.holds_our_write("name", "Ada L.")


async def test_a_customer_keeps_when_each_field_changed(uow_factory):
    async with uow_factory() as uow:
        customer = await uow.customers.add(CustomerData("A", "a@example.com"), T0)
        later = T0 + timedelta(seconds=30)
        revised = customer.revised(CustomerData("B", "a@example.com"), later, {"name": T0 + timedelta(seconds=7)})
        await uow.customers.save(revised)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.customers.get(customer.id)
    assert stored.changed_at("name") == T0 + timedelta(seconds=7)  # the time it changed over there
    assert stored.changed_at("email") == T0
    assert stored.updated_at == later


async def test_the_first_installation_id_stands(uow_factory):
    async with uow_factory() as uow:
        assert await uow.installation.get() is None
        assert await uow.installation.add("first", T0) == "first"
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.installation.add("second", T0) == "first"
        assert await uow.installation.get() == "first"


async def test_bindings_are_kept_per_system_and_replaced(uow_factory):
    test_account = AccountBinding(system="stripe", account=ExternalAccount("acct_1", "test"), bound_at=T0)
    async with uow_factory() as uow:
        assert await uow.bindings.get("stripe") is None
        await uow.bindings.save(test_account)
        await uow.commit()
    live = AccountBinding(system="stripe", account=ExternalAccount("acct_1", "live"), bound_at=T0 + timedelta(days=1))
    async with uow_factory() as uow:
        assert await uow.bindings.get("stripe") == test_account
        assert await uow.bindings.add(live) == test_account  # a first binding only: the one there stands
        await uow.bindings.save(live)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.bindings.get("stripe") == live
        assert await uow.bindings.get("salesforce") is None


async def test_latest_is_the_most_recently_synced_working_link_of_a_system(uow_factory):
    async with uow_factory() as uow:
        assert await uow.mappings.latest("stripe") is None
        a = await uow.customers.add(CustomerData("A"), T0)
        b = await uow.customers.add(CustomerData("B"), T0)
        c = await uow.customers.add(CustomerData("C"), T0)
        for customer, at, external_id in (
            (a, T0, "cus_a"),
            (b, T0 + timedelta(seconds=2), "cus_b"),
            (c, T0 + timedelta(seconds=9), "cus_c"),
        ):
            stored = await uow.mappings.save(msgspec.structs.replace(mapping(customer.id), external_id=external_id, synced_at=at))
            if customer is c:
                await uow.mappings.save(stored.marked_broken("unknown there"))
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.mappings.latest("stripe")).external_id == "cus_b"  # the newest that still works
        assert await uow.mappings.latest("salesforce") is None
