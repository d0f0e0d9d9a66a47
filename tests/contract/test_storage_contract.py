from datetime import UTC, datetime, timedelta

import pytest

from domain.customer import CustomerData
from domain.errors import ConcurrentUpdate
from domain.mapping import ExternalMapping
from domain.messages import ChangeKind, CustomerChanged
from domain.sync import Direction, Operation, SyncRecord, SyncStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(customer_id: int, n: int = 0) -> CustomerChanged:
    return CustomerChanged(
        event_id=f"e-{customer_id}-{n}",
        customer_id=customer_id,
        kind=ChangeKind.UPDATED,
        version=n + 1,
        data=CustomerData(f"v{n}"),
        occurred_at=T0,
    )


def mapping(customer_id: int, external_id: str, system: str = "stripe") -> ExternalMapping:
    return ExternalMapping(
        customer_id=customer_id, system=system, external_id=external_id, synced=CustomerData("A"), synced_version=1, synced_at=T0
    )


async def test_committed_work_is_visible_to_the_next_unit_of_work(uow_factory):
    async with uow_factory() as uow:
        customer = await uow.customers.add(CustomerData("Ada", "ada@example.com"), T0)
        await uow.outbox.add(event(customer.id))
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.customers.get(customer.id)).data == CustomerData("Ada", "ada@example.com")
        assert [p.event.event_id for p in await uow.relay.claim(10)] == [f"e-{customer.id}-0"]


async def test_leaving_without_commit_rolls_everything_back(uow_factory):
    async with uow_factory() as uow:
        customer = await uow.customers.add(CustomerData("Ada"), T0)
        await uow.outbox.add(event(customer.id))
    async with uow_factory() as uow:
        assert await uow.customers.get(customer.id) is None
        assert await uow.relay.claim(10) == []


async def test_an_exception_rolls_back_the_change_and_its_event_together(uow_factory):
    with pytest.raises(RuntimeError):
        async with uow_factory() as uow:
            customer = await uow.customers.add(CustomerData("Ada"), T0)
            await uow.outbox.add(event(customer.id))
            raise RuntimeError("crash before commit")
    async with uow_factory() as uow:
        assert await uow.customers.page(after_id=None, limit=10) == []
        assert await uow.relay.claim(10) == []


async def test_customers_get_increasing_ids_and_saves_replace(uow_factory):
    async with uow_factory() as uow:
        a = await uow.customers.add(CustomerData("A"), T0)
        b = await uow.customers.add(CustomerData("B"), T0)
        await uow.customers.save(a.revised(CustomerData("A2", "a@example.com"), T0 + timedelta(seconds=1)))
        await uow.commit()
    assert b.id > a.id
    async with uow_factory() as uow:
        stored = await uow.customers.get(a.id)
        assert (stored.data, stored.version, stored.updated_at) == (
            CustomerData("A2", "a@example.com"),
            2,
            T0 + timedelta(seconds=1),
        )
        assert await uow.customers.get(b.id + 1000) is None


async def test_pages_are_in_id_order_without_tombstones_and_filter_email_ignoring_case(uow_factory):
    async with uow_factory() as uow:
        ids = [(await uow.customers.add(CustomerData(f"C{i}", f"C{i % 2}@Example.com"), T0)).id for i in range(5)]
        await uow.customers.save((await uow.customers.get(ids[2])).tombstone(T0))
        await uow.commit()
    async with uow_factory() as uow:
        assert [c.id for c in await uow.customers.page(after_id=None, limit=3)] == [ids[0], ids[1], ids[3]]
        assert [c.id for c in await uow.customers.page(after_id=ids[1], limit=10)] == [ids[3], ids[4]]
        assert [c.id for c in await uow.customers.page(after_id=None, limit=10, email="c0@example.COM")] == [ids[0], ids[4]]


async def test_mappings_are_found_both_ways_and_replaced_per_customer_and_system(uow_factory):
    async with uow_factory() as uow:
        c = await uow.customers.add(CustomerData("A"), T0)
        stored = await uow.mappings.save(mapping(c.id, "cus_1"))
        await uow.mappings.save(mapping(c.id, "sf_1", system="salesforce"))
        await uow.mappings.save(stored.synced_to(c, CustomerData("B"), T0))
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.mappings.get(c.id, "stripe")).synced == CustomerData("B")
        assert (await uow.mappings.by_external_id("stripe", "cus_1")).customer_id == c.id
        assert await uow.mappings.by_external_id("salesforce", "cus_1") is None
        assert [m.system for m in await uow.mappings.for_customer(c.id)] == ["salesforce", "stripe"]


async def test_one_external_id_cannot_be_linked_to_two_customers(uow_factory):
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own integrity error
        async with uow_factory() as uow:
            a = await uow.customers.add(CustomerData("A"), T0)
            b = await uow.customers.add(CustomerData("B"), T0)
            await uow.mappings.save(mapping(a.id, "cus_1"))
            await uow.mappings.save(mapping(b.id, "cus_1"))
            await uow.commit()


async def test_sync_records_are_replaced_by_key_and_listed_newest_first(uow_factory):
    async with uow_factory() as uow:
        c = await uow.customers.add(CustomerData("A"), T0)
        first = SyncRecord.pending("e1", c.id, Direction.OUTBOUND, "stripe", Operation.CREATE, T0)
        second = SyncRecord.pending("e2", c.id, Direction.INBOUND, "stripe", Operation.UPDATE, T0 + timedelta(seconds=1))
        await uow.sync_records.save(first)
        await uow.sync_records.save(second)
        await uow.sync_records.save(first.succeeded(T0 + timedelta(seconds=2), note="ok"))
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.sync_records.get("e1", "stripe", Direction.OUTBOUND)
        assert (stored.status, stored.attempts, stored.note) == (SyncStatus.SUCCEEDED, 1, "ok")
        assert await uow.sync_records.get("e1", "stripe", Direction.INBOUND) is None
        assert [r.event_id for r in await uow.sync_records.for_customer(c.id, 10)] == ["e2", "e1"]
        assert len(await uow.sync_records.for_customer(c.id, 1)) == 1


async def test_the_inbox_remembers_event_ids_per_system(uow_factory):
    async with uow_factory() as uow:
        await uow.inbox.add("stripe", "evt_1", T0)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.inbox.seen("stripe", "evt_1")
        assert not await uow.inbox.seen("salesforce", "evt_1")
        assert not await uow.inbox.seen("stripe", "evt_2")


async def test_the_inbox_tells_which_of_many_event_ids_it_has_seen(uow_factory):
    async with uow_factory() as uow:
        await uow.inbox.add("stripe", "evt_1", T0)
        await uow.inbox.add("stripe", "evt_3", T0)
        await uow.inbox.add("salesforce", "evt_2", T0)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.inbox.seen_many("stripe", ["evt_1", "evt_2", "evt_3", "evt_4"]) == {"evt_1", "evt_3"}
        assert await uow.inbox.seen_many("stripe", []) == set()


async def test_the_outbox_is_claimed_oldest_first_and_published_rows_are_not_claimed_again(uow_factory):
    async with uow_factory() as uow:
        for n in range(5):
            await uow.outbox.add(event(1, n))
        await uow.commit()
    async with uow_factory() as uow:
        batch = await uow.relay.claim(3)
        assert [p.event.event_id for p in batch] == ["e-1-0", "e-1-1", "e-1-2"]
        await uow.relay.mark_published([p.position for p in batch], T0)
        await uow.commit()
    async with uow_factory() as uow:
        assert [p.event.event_id for p in await uow.relay.claim(10)] == ["e-1-3", "e-1-4"]


async def test_saving_over_a_concurrent_change_is_refused(uow_factory):
    async with uow_factory() as uow:
        c = await uow.customers.add(CustomerData("A"), T0)
        await uow.commit()
    async with uow_factory() as uow:
        await uow.customers.save(c.revised(CustomerData("B"), T0))
        await uow.commit()
    with pytest.raises(ConcurrentUpdate):
        async with uow_factory() as uow:
            await uow.customers.save(c.revised(CustomerData("C"), T0))  # based on version 1, stored is 2
    async with uow_factory() as uow:
        assert (await uow.customers.get(c.id)).data == CustomerData("B")
        await uow.customers.save(await uow.customers.get(c.id))  # unchanged: a no-op, not a conflict


async def test_a_customer_saved_as_it_was_just_added_is_stored_once_and_then_revisable(uow_factory):
    """A create records its change at once (customer and event in one transaction): saving the
    customer as added is a no-op; revising it afterwards, in that transaction or the next, works."""
    async with uow_factory() as uow:
        c = await uow.customers.add(CustomerData("A", "a@example.com"), T0)
        await uow.customers.save(c)
        revised = c.revised(CustomerData("A2", "a@example.com"), T0 + timedelta(seconds=1))
        await uow.customers.save(revised)
        await uow.customers.save(revised)  # again: stored already, a no-op
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.customers.get(c.id)).data == CustomerData("A2", "a@example.com")
        with pytest.raises(ConcurrentUpdate):
            await uow.customers.save(c.revised(CustomerData("Stale"), T0))  # from version 1: refused as before
