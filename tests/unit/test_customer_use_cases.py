import pytest

from adapters.memory.database import InMemoryUnitOfWork
from application.commands import CreateCustomer, DeleteCustomer, ListCustomers, PatchCustomer, ReplaceCustomer
from application.customers.create import create_customer
from application.customers.delete import delete_customer
from application.customers.queries import get_customer, list_customers, sync_history
from application.customers.update import patch_customer, replace_customer
from domain.customer import CustomerData
from domain.errors import ConcurrentUpdate, CustomerNotFound, InvalidCustomer, StaleVersion
from domain.messages import ChangeKind


async def outbox(db):
    async with db.unit_of_work() as uow:
        return [p.event for p in await uow.relay.claim(1000)]


async def test_create_stores_the_customer_and_its_event_together(db, clock):
    customer = await create_customer(CreateCustomer(" Ada ", "ada@example.com"), db.unit_of_work(), clock)
    assert (customer.id, customer.data, customer.version) == (1, CustomerData("Ada", "ada@example.com"), 1)
    [event] = await outbox(db)
    assert (event.customer_id, event.kind, event.version, event.data, event.origin) == (
        1,
        ChangeKind.CREATED,
        1,
        customer.data,
        None,
    )


async def test_ids_are_assigned_by_the_catalog(db, clock):
    ids = [(await create_customer(CreateCustomer(f"C{i}"), db.unit_of_work(), clock)).id for i in range(3)]
    assert ids == [1, 2, 3]


async def test_invalid_input_stores_nothing(db, clock):
    with pytest.raises(InvalidCustomer):
        await create_customer(CreateCustomer("Ada", "not-an-email"), db.unit_of_work(), clock)
    assert await outbox(db) == []
    assert (await list_customers(ListCustomers(), db.unit_of_work())).customers == []


async def test_replace_sets_every_field_and_emits_an_update(db, clock):
    created = await create_customer(CreateCustomer("Ada", "ada@example.com"), db.unit_of_work(), clock)
    clock.advance(5)
    replaced = await replace_customer(
        ReplaceCustomer(customer_id=created.id, name="Ada L.", email=None), db.unit_of_work(), clock
    )
    assert replaced.data == CustomerData("Ada L.", None)
    assert replaced.version == 2 and replaced.updated_at > created.updated_at
    assert [e.kind for e in await outbox(db)] == [ChangeKind.CREATED, ChangeKind.UPDATED]


async def test_patch_changes_only_the_given_fields(db, clock):
    created = await create_customer(CreateCustomer("Ada", "ada@example.com"), db.unit_of_work(), clock)
    patched = await patch_customer(
        PatchCustomer(customer_id=created.id, changes={"email": "new@example.com"}), db.unit_of_work(), clock
    )
    assert patched.data == CustomerData("Ada", "new@example.com")


async def test_a_write_that_changes_nothing_emits_nothing(db, clock):
    created = await create_customer(CreateCustomer("Ada", "ada@example.com"), db.unit_of_work(), clock)
    same = await patch_customer(PatchCustomer(customer_id=created.id, changes={"name": " Ada "}), db.unit_of_work(), clock)
    again = await replace_customer(
        ReplaceCustomer(customer_id=created.id, name="Ada", email="ada@example.com"), db.unit_of_work(), clock
    )
    assert same.version == again.version == 1
    assert len(await outbox(db)) == 1


async def test_a_stale_expected_version_is_refused_and_changes_nothing(db, clock):
    created = await create_customer(CreateCustomer("Ada"), db.unit_of_work(), clock)
    await patch_customer(PatchCustomer(customer_id=created.id, changes={"name": "B"}), db.unit_of_work(), clock)
    with pytest.raises(StaleVersion) as exc:
        await patch_customer(
            PatchCustomer(customer_id=created.id, changes={"name": "C"}, expected_versions=frozenset({1})),
            db.unit_of_work(),
            clock,
        )
    assert exc.value.actual == 2
    with pytest.raises(StaleVersion):
        await delete_customer(DeleteCustomer(customer_id=created.id, expected_versions=frozenset({1})), db.unit_of_work(), clock)
    assert (await get_customer(created.id, db.unit_of_work(), ["stripe"])).customer.name == "B"


async def test_delete_leaves_a_tombstone_that_reads_as_not_found(db, clock):
    created = await create_customer(CreateCustomer("Ada", "ada@example.com"), db.unit_of_work(), clock)
    await delete_customer(DeleteCustomer(customer_id=created.id), db.unit_of_work(), clock)
    with pytest.raises(CustomerNotFound):
        await get_customer(created.id, db.unit_of_work(), ["stripe"])
    with pytest.raises(CustomerNotFound):
        await delete_customer(DeleteCustomer(customer_id=created.id), db.unit_of_work(), clock)
    events = await outbox(db)
    assert events[-1].kind is ChangeKind.DELETED and events[-1].data is None
    async with db.unit_of_work() as uow:
        tombstone = await uow.customers.get(created.id)
    # The personal data goes; the id and version stay so late events cannot resurrect it.
    assert tombstone.deleted and tombstone.data == CustomerData() and tombstone.version == 2


@pytest.mark.parametrize("missing", [0, -1, 999, 2**70])
async def test_unknown_ids_are_not_found(db, clock, missing):
    with pytest.raises(CustomerNotFound):
        await get_customer(missing, db.unit_of_work(), ["stripe"])
    with pytest.raises(CustomerNotFound):
        await patch_customer(PatchCustomer(customer_id=missing, changes={}), db.unit_of_work(), clock)
    with pytest.raises(CustomerNotFound):
        await sync_history(missing, db.unit_of_work())


async def test_a_new_customer_shows_a_pending_link_for_every_configured_system(db, clock):
    created = await create_customer(CreateCustomer("Ada"), db.unit_of_work(), clock)
    view = await get_customer(created.id, db.unit_of_work(), ["stripe", "salesforce"])
    assert [(link.system, link.external_id, link.sync_status) for link in view.links] == [
        ("stripe", None, "pending"),
        ("salesforce", None, "pending"),
    ]


async def test_listing_pages_through_everyone_once_in_id_order(db, clock):
    for i in range(7):
        await create_customer(CreateCustomer(f"C{i}", f"c{i}@example.com"), db.unit_of_work(), clock)
    await delete_customer(DeleteCustomer(customer_id=3), db.unit_of_work(), clock)
    seen, after = [], None
    for _ in range(10):
        page = await list_customers(ListCustomers(limit=2, after_id=after), db.unit_of_work())
        seen += [c.id for c in page.customers]
        after = page.next_after_id
        if after is None:
            break
    assert seen == [1, 2, 4, 5, 6, 7]


async def test_listing_filters_by_email_case_insensitively(db, clock):
    await create_customer(CreateCustomer("A", "Ada@Example.com"), db.unit_of_work(), clock)
    await create_customer(CreateCustomer("B", "bob@example.com"), db.unit_of_work(), clock)
    await create_customer(CreateCustomer("C", "ada@example.com"), db.unit_of_work(), clock)  # emails are not unique
    page = await list_customers(ListCustomers(email="ADA@example.COM"), db.unit_of_work())
    assert [c.name for c in page.customers] == ["A", "C"]


async def test_the_page_size_is_capped(db, clock):
    for i in range(3):
        await create_customer(CreateCustomer(f"C{i}"), db.unit_of_work(), clock)
    assert len((await list_customers(ListCustomers(limit=10_000), db.unit_of_work())).customers) == 3
    assert len((await list_customers(ListCustomers(limit=-5), db.unit_of_work())).customers) == 1


class RacingSaves(InMemoryUnitOfWork):
    """A unit of work whose first ``races`` saves lose to a concurrent writer (as PostgreSQL reports it)."""

    def __init__(self, db, races: int) -> None:
        super().__init__(db)
        self.races = races

    async def __aenter__(self):
        await super().__aenter__()
        save = self.customers.save

        async def racing_save(customer):
            if self.races:
                self.races -= 1
                raise ConcurrentUpdate(customer.id)
            await save(customer)

        self.customers.save = racing_save
        return self


async def test_a_write_racing_the_sync_worker_is_retried_from_a_fresh_read(db, clock):
    created = await create_customer(CreateCustomer("Ada"), db.unit_of_work(), clock)
    patched = await patch_customer(PatchCustomer(customer_id=created.id, changes={"name": "B"}), RacingSaves(db, races=2), clock)
    assert patched.name == "B"
    with pytest.raises(ConcurrentUpdate):
        await patch_customer(PatchCustomer(customer_id=created.id, changes={"name": "C"}), RacingSaves(db, races=3), clock)
    assert (await get_customer(created.id, db.unit_of_work(), ["stripe"])).customer.name == "B"
