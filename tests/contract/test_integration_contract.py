"""The integration contract: what the sync rules rely on from every integration adapter
(``application.ports.Integration``), run against each -- in-memory Stripe, the SDK Stripe over
respx, in-memory Salesforce and Salesforce over respx (``tests.support.integrations``).

A third integration passes this suite before it is wired in: that is its checklist.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from application.errors import ExternalCustomerMissing, RequestRefused, RetryableIntegrationError
from application.sync.lookup import find_own_create
from domain.binding import ExternalAccount
from domain.customer import CustomerData
from domain.mapping import CreateIntent
from domain.messages import ChangeKind
from domain.ownership import OwnershipTag, proves_own_create, write_key
from domain.safety import must_refetch
from tests.support.integrations import KINDS, harness

INSTALLATION = "0123456789abcdef0123456789abcdef"
ADA = CustomerData("Ada Lovelace", "ada@example.com")


@pytest.fixture(params=KINDS)
async def side(request):
    async with harness(request.param) as h:
        yield h


def intent_for(customer_id: int, data: CustomerData, side) -> CreateIntent:
    return CreateIntent(
        customer_id=customer_id,
        system=side.integration.system,
        idempotency_key=write_key(INSTALLATION, "create"),
        data=data,
        created_at=side.clock.now(),
    )


async def create(side, customer_id: int = 7, data: CustomerData = ADA) -> tuple[CreateIntent, str]:
    intent = intent_for(customer_id, data, side)
    tag = OwnershipTag(internal_id=customer_id, installation=INSTALLATION, create_key=intent.idempotency_key)
    made = await side.integration.create_customer(data, tag=tag, idempotency_key=intent.idempotency_key)
    return intent, made.external_id


async def test_a_create_is_read_back_with_its_data_and_the_proof_that_our_create_made_it(side):
    intent, external_id = await create(side)
    found = await side.integration.retrieve_customer(external_id)
    assert found.external_id == external_id and found.data == ADA and not found.deleted
    assert proves_own_create(found.claim, INSTALLATION, intent)
    other = intent_for(7, ADA, side)  # another create of the same customer: not this one's proof
    assert not proves_own_create(found.claim, INSTALLATION, other)


async def test_a_create_repeated_with_its_key_makes_nothing_more(side):
    intent = intent_for(7, ADA, side)
    tag = OwnershipTag(internal_id=7, installation=INSTALLATION, create_key=intent.idempotency_key)
    first = await side.integration.create_customer(ADA, tag=tag, idempotency_key=intent.idempotency_key)
    side.clock.advance(5)
    again = await side.integration.create_customer(ADA, tag=tag, idempotency_key=intent.idempotency_key)
    assert again.external_id == first.external_id
    page = await side.integration.list_customers(limit=100)
    assert [c.external_id for c in page.customers] == [first.external_id]


async def test_an_update_sends_only_its_fields_and_none_clears_one(side):
    _, external_id = await create(side)
    side.clock.advance(1)
    await side.integration.update_customer(external_id, {"email": None}, idempotency_key=write_key(INSTALLATION, "update"))
    assert (await side.integration.retrieve_customer(external_id)).data == CustomerData("Ada Lovelace", None)
    await side.integration.update_customer(external_id, {"name": "Ada King Lovelace"})
    assert (await side.integration.retrieve_customer(external_id)).data == CustomerData("Ada King Lovelace", None)


async def test_a_name_round_trips_exactly(side):
    for name in ("Ada", "Ada Lovelace", "Ada King Lovelace", "Jean-Luc  Picard", None):
        _, external_id = await create(side, data=CustomerData(name, "x@example.com"))
        assert (await side.integration.retrieve_customer(external_id)).data.name == name
        await side.integration.delete_customer(external_id)


async def test_a_record_made_over_there_is_tagged_as_ours_by_a_link(side):
    external_id = await side.person_creates(CustomerData("Grace Hopper", "grace@example.com"))
    found = await side.integration.retrieve_customer(external_id)
    assert found.claim.internal_id is None and found.claim.installation is None
    await side.integration.link_customer(external_id, OwnershipTag(internal_id=9, installation=INSTALLATION))
    found = await side.integration.retrieve_customer(external_id)
    assert (found.claim.internal_id, found.claim.installation) == (9, INSTALLATION)
    assert found.data == CustomerData("Grace Hopper", "grace@example.com")  # the link changes nothing else


async def test_a_deleted_record_reads_as_deleted_and_refuses_writes_as_missing(side):
    _, external_id = await create(side)
    await side.integration.delete_customer(external_id)
    assert (await side.integration.retrieve_customer(external_id)).deleted
    with pytest.raises(ExternalCustomerMissing):
        await side.integration.delete_customer(external_id)
    with pytest.raises(ExternalCustomerMissing):
        await side.integration.update_customer(external_id, {"name": "Back"})


async def test_an_id_never_seen_is_missing_never_deleted(side):
    with pytest.raises(ExternalCustomerMissing):
        await side.integration.retrieve_customer(side.unknown_id())
    with pytest.raises(ExternalCustomerMissing):
        await side.integration.update_customer(side.unknown_id(), {"name": "X"})


async def test_a_malformed_id_is_missing_and_reaches_no_query(side):
    for hostile in ("' OR Id != '", "../../x", "cus_1/../../v1/account", "003' OR '1'='1"):
        with pytest.raises(ExternalCustomerMissing):
            await side.integration.retrieve_customer(hostile)


async def test_the_list_is_newest_first_paged_and_filtered_by_exact_email(side):
    count = side.min_page + 2
    made = []
    for i in range(count):
        made.append(await side.person_creates(CustomerData(f"P {i}", f"p{i}@example.com")))
        side.clock.advance(1)
    seen, cursor = [], None
    for _ in range(count + 1):
        page = await side.integration.list_customers(limit=side.min_page, cursor=cursor)
        seen += [c.external_id for c in page.customers]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(made))
    page = await side.integration.list_customers(limit=100, email="p1@example.com")
    assert [c.external_id for c in page.customers] == [made[1]]
    assert (await side.integration.list_customers(limit=100, email="P1@example.com")).customers == []


async def test_created_since_bounds_the_list_and_the_creations_include_deleted_ones(side):
    old = await side.person_creates(CustomerData("Old", "old@example.com"))
    side.clock.advance(3600)
    since = side.clock.now()
    new = await side.person_creates(CustomerData("New", "new@example.com"))
    gone = await side.person_creates(CustomerData("Gone", "gone@example.com"))
    await side.person_deletes(gone)
    listed = [c.external_id for c in (await side.integration.list_customers(limit=100, created_since=since)).customers]
    assert listed == [new]
    made = (await side.integration.created_customers(created_since=since)).customers
    assert {c.external_id for c in made} == {new, gone} and old not in {c.external_id for c in made}


async def test_a_look_up_finds_our_create_even_once_a_person_deleted_it(side):
    intent, external_id = await create(side)
    side.clock.advance(60)
    assert (await find_own_create(side.integration, intent, INSTALLATION)).external_id == external_id
    await side.person_deletes(external_id)
    found = await find_own_create(side.integration, intent, INSTALLATION)
    assert found is not None and found.external_id == external_id and found.deleted
    assert await find_own_create(side.integration, intent_for(8, ADA, side), INSTALLATION) is None


async def test_a_create_repeated_after_a_person_deleted_its_record_makes_no_second_one(side):
    intent = intent_for(7, ADA, side)
    tag = OwnershipTag(internal_id=7, installation=INSTALLATION, create_key=intent.idempotency_key)
    first = await side.integration.create_customer(ADA, tag=tag, idempotency_key=intent.idempotency_key)
    await side.person_deletes(first.external_id)
    again = await side.integration.create_customer(ADA, tag=tag, idempotency_key=intent.idempotency_key)
    assert again.external_id == first.external_id
    assert (await side.integration.list_customers(limit=100)).customers == []


async def test_recent_changes_list_each_change_once_newest_first_under_a_stable_id(side):
    a = await side.person_creates(CustomerData("A", "a@example.com"))
    b = await side.person_creates(CustomerData("B", "b@example.com"))
    side.clock.advance(600)
    since = side.clock.now()
    await side.person_edits(a, CustomerData("A Two", "a@example.com"))
    side.clock.advance(2)
    await side.person_deletes(b)
    side.clock.advance(2)
    c = await side.person_creates(CustomerData("C", "c@example.com"))

    async def everything():
        changes, cursor = [], None
        for _ in range(10):
            page = await side.integration.recent_changes(since=since, cursor=cursor)
            changes += page.changes
            if (cursor := page.next_cursor) is None:
                return changes
        raise AssertionError("no end to the pages")

    changes = await everything()
    assert all(ch.system == side.integration.system for ch in changes)
    latest = {}
    for ch in changes:  # newest first: the first seen of each record is its latest change
        latest.setdefault(ch.external_id, ch)
    assert latest[a].kind is ChangeKind.UPDATED and latest[a].customer.data.name == "A Two"
    # A deletion: final (a deletion event, applied as it is) or, in a system where it can be undone
    # (Salesforce's Recycle Bin), a change whose snapshot says deleted (re-fetched: domain.safety).
    assert latest[b].customer.deleted
    assert latest[b].kind is ChangeKind.DELETED or must_refetch(latest[b], latest[b].customer.data)  # even as an echo
    assert latest[c].kind is ChangeKind.CREATED and latest[c].customer.data == CustomerData("C", "c@example.com")
    times = [ch.occurred_at for ch in changes]
    assert times == sorted(times, reverse=True)
    assert all(ch.occurred_at >= since - timedelta(seconds=1) for ch in changes)
    assert [ch.event_id for ch in await everything()] == [ch.event_id for ch in changes]  # stable: the inbox drops repeats


async def test_our_own_writes_are_listed_as_changes_whose_snapshot_is_what_we_wrote(side):
    since = side.clock.now()
    _, external_id = await create(side)
    side.clock.advance(1)
    await side.integration.update_customer(external_id, {"name": "Ada King"}, idempotency_key=write_key(INSTALLATION, "update"))
    page = await side.integration.recent_changes(since=since)
    mine = [ch for ch in page.changes if ch.external_id == external_id]
    assert mine and mine[0].customer.data == CustomerData("Ada King", "ada@example.com")


async def test_a_refused_write_is_a_refusal(side):
    side.refuse_writes()
    with pytest.raises(RequestRefused):
        await side.integration.create_customer(
            ADA, tag=OwnershipTag(internal_id=1, installation=INSTALLATION, create_key="k"), idempotency_key="k"
        )


@pytest.mark.parametrize("operation", ["update", "retrieve", "delete"])
async def test_a_server_error_is_retryable(side, operation):
    _, external_id = await create(side)
    side.fail_next(operation)
    with pytest.raises(RetryableIntegrationError):
        if operation == "update":
            await side.integration.update_customer(external_id, {"name": "X"})
        elif operation == "retrieve":
            await side.integration.retrieve_customer(external_id)
        else:
            await side.integration.delete_customer(external_id)
    assert not (await side.integration.retrieve_customer(external_id)).deleted


async def test_the_account_is_named_and_stable(side):
    first = await side.integration.account()
    assert isinstance(first, ExternalAccount) and first.account_id and first.mode
    assert await side.integration.account() == first
