"""The API with Salesforce enabled beside Stripe: Salesforce's shorter limits refused up front
(problem+json naming the field, nothing stored), the dev routes of the fake org, and a change
travelling across all three through them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory.clock import FakeClock
from application.sync.catchup import catch_up_once
from application.sync.reconcile import Reconciler, start_here
from domain.customer import CustomerData
from domain.drift import MatchBy, RunStatus
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem


@pytest.fixture
def three_way(clock: FakeClock) -> EmbeddedSystem:
    return EmbeddedSystem(Settings(stripe_webhook_secret=WEBHOOK_SECRET, integrations="stripe,salesforce"), clock=clock)


@pytest.fixture
async def api(three_way: EmbeddedSystem) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(three_way.container, dev_routes=True)) as c:
        yield c


async def customers(api: AsyncTestClient) -> list[dict]:
    return (await api.get("/api/v1/customers")).json()["data"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "B" * 81}, "name", "LastName"),
        ({"name": "A" * 41 + " " + "L" * 40}, "name", "LastName"),  # too long a first part goes whole to LastName
        ({"name": "[no name]"}, "name", "without a name"),
        ({"name": "Ada", "email": "a" * 60 + "@" + "b" * 20 + ".example.com"}, "email", "Email"),
    ],
)
async def test_what_salesforce_would_refuse_is_refused_up_front_and_nothing_is_stored(api, body, field, words):
    answer = await api.post("/api/v1/customers", json=body)
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("application/problem+json")
    [error] = answer.json()["errors"]
    assert error["field"] == field and words in error["reason"]
    assert await customers(api) == []


async def test_a_first_part_too_long_for_firstname_is_stored_whole_in_lastname(api, three_way):
    answer = await api.post("/api/v1/customers", json={"name": "A" * 41 + " Lovelace"})
    assert answer.status_code == 201, answer.text
    await three_way.settle()
    [contact] = three_way.container.salesforce_org().live()
    assert (contact["FirstName"], contact["LastName"]) == (None, "A" * 41 + " Lovelace")


async def test_patch_and_put_are_held_to_the_same_limits_and_both_fields_are_named(api):
    made = (await api.post("/api/v1/customers", json={"name": "Ada", "email": "ada@example.com"})).json()
    answer = await api.patch(f"/api/v1/customers/{made['id']}", json={"name": "B" * 81, "email": "not an email"})
    assert answer.status_code == 422
    assert {e["field"] for e in answer.json()["errors"]} == {"name", "email"}
    answer = await api.put(f"/api/v1/customers/{made['id']}", json={"name": "Ada", "email": "a" * 60 + "@" + "b" * 30 + ".io"})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "email"
    assert (await api.get(f"/api/v1/customers/{made['id']}")).json()["version"] == 1


async def test_a_name_stripe_takes_is_fine_without_salesforce(client):
    answer = await client.post("/api/v1/customers", json={"name": "B" * 200})
    assert answer.status_code == 201  # Stripe alone: the catalog's own limit (256)


async def test_a_change_travels_across_all_three_through_the_dev_routes(api, three_way):
    sf = three_way.container.salesforce()
    c = three_way.container

    async def poll() -> None:
        await catch_up_once(sf, c.uow_factory(), c.publisher(), three_way.clock, "test", 60)

    await poll()  # catch-up's floor: what changes in the org from now on is listed
    made = (await api.post("/api/v1/customers", json={"name": "Ada King Lovelace", "email": "ada@example.com"})).json()
    await three_way.settle()
    [contact] = (await api.get("/dev/salesforce/contacts")).json()
    assert (contact["FirstName"], contact["LastName"], contact["Email"]) == ("Ada King", "Lovelace", "ada@example.com")
    [stripe_customer] = (await api.get("/dev/stripe/customers")).json()["data"]

    three_way.clock.advance(5)
    edited = await api.patch(f"/dev/salesforce/contacts/{contact['Id']}", json={"FirstName": "Augusta Ada"})
    assert edited.status_code == 200
    await poll()
    await three_way.settle()
    assert (await api.get(f"/api/v1/customers/{made['id']}")).json()["name"] == "Augusta Ada Lovelace"
    assert (await api.get("/dev/stripe/customers")).json()["data"][0]["name"] == "Augusta Ada Lovelace"
    assert stripe_customer["id"] == (await api.get("/dev/stripe/customers")).json()["data"][0]["id"]

    refused = await api.post("/dev/salesforce/contacts", json={"FirstName": "Grace"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "LastName"
    missing = await api.delete("/dev/salesforce/contacts/003000000000000AAA")
    assert missing.status_code == 404

    three_way.clock.advance(5)
    assert (await api.delete(f"/dev/salesforce/contacts/{contact['Id']}")).status_code == 200
    await poll()
    await three_way.settle()
    assert await customers(api) == []
    assert (await api.get("/dev/stripe/customers")).json()["data"] == []


async def test_the_dev_routes_of_the_org_are_absent_without_salesforce(dev_client):
    assert (await dev_client.get("/dev/salesforce/contacts")).status_code == 404


async def test_a_first_sync_with_an_existing_org_links_by_email_and_makes_nobody_twice(api, three_way):
    """Reconcile (first sync) against Salesforce: Contacts that exist before the installation are
    matched to catalog customers by email, the rest imported or exported, each once."""
    org = three_way.container.salesforce_org()
    ada = org.create(FirstName="Ada", LastName="Lovelace", Email="ada@example.com")["Id"]
    org.create(LastName="Hopper", FirstName="Grace", Email="grace@example.com")
    three_way.container.integrations()  # built before the catalog's customers exist
    async with three_way.uow_factory() as uow:  # the catalog as it was before: no outbox to Salesforce
        customer = await uow.customers.add(CustomerData("Ada Lovelace", "ada@example.com"), three_way.clock.now())
        linus = await uow.customers.add(CustomerData("Linus", "linus@example.com"), three_way.clock.now())
        await uow.commit()
    three_way.clock.advance(1)
    ctx = await three_way.context()
    run, _ = await start_here(
        ctx, "salesforce", "test", dry_run=False, match_by=MatchBy.EMAIL, trigger="cli", presumed_dead=lambda other: False
    )
    done = await Reconciler(run, three_way.container.salesforce(), three_way.container.integrations(), ctx).execute()
    assert done.status is RunStatus.DONE
    await three_way.settle()
    live = {c["Email"]: c for c in org.live()}
    assert set(live) == {"ada@example.com", "grace@example.com", "linus@example.com"}  # Linus exported, nobody twice
    assert live["ada@example.com"]["Id"] == ada  # matched, not made again
    by_email = {c["email"]: c for c in await customers(api)}
    assert set(by_email) == {"ada@example.com", "grace@example.com", "linus@example.com"}  # Grace imported once
    assert by_email["ada@example.com"]["id"] == customer.id and by_email["linus@example.com"]["id"] == linus.id
    assert all(c[org.external_id_field] for c in live.values())  # every Contact tagged as ours
