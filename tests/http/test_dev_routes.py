"""/dev/stripe/customers: acting on the fake Stripe as the dashboard would, and the catalog following."""

from __future__ import annotations

import pytest

from tests.http.helpers import CUSTOMERS, DEV_STRIPE, assert_problem, create, fields_of, settled_state, url
from tests.support.system import tagged


async def catalog(client) -> list[dict]:
    return (await client.get(CUSTOMERS)).json()["data"]


async def test_post_creates_a_stripe_customer_that_appears_in_the_catalog_with_its_id_written_back(dev_client, system):
    response = await dev_client.post(DEV_STRIPE, json={"name": "Linus", "email": "linus@example.com"})
    assert response.status_code == 201
    cus_id = response.json()["id"]
    assert cus_id.startswith("cus_") and cus_id in system.stripe.customers

    await system.settle()

    [customer] = await catalog(dev_client)
    assert (customer["name"], customer["email"]) == ("Linus", "linus@example.com")
    assert tagged(system.stripe.customers[cus_id]["metadata"]) == await system.tags(customer["id"])
    mapping = (await dev_client.get(url(customer["id"]))).json()["mappings"][0]
    assert (mapping["external_id"], mapping["sync_status"]) == (cus_id, "synced")


async def test_patch_changes_the_stripe_customer_and_the_catalog_follows_after_delivery(dev_client, system):
    await create(dev_client, name="Ada", email="ada@example.com")
    await system.settle()
    [cus_id] = system.stripe.customers

    response = await dev_client.patch(f"{DEV_STRIPE}/{cus_id}", json={"name": "Ada King", "metadata": {"tier": "gold"}})
    assert response.status_code == 200
    assert system.stripe.customers[cus_id]["name"] == "Ada King"
    assert tagged(system.stripe.customers[cus_id]["metadata"]) == await system.tags(1, tier="gold")
    assert (await dev_client.get(url(1))).json()["name"] == "Ada"  # not before the webhook is delivered

    assert await system.deliver_webhooks() >= 1
    await system.settle()

    customer = (await dev_client.get(url(1))).json()
    assert (customer["name"], customer["email"], customer["version"]) == ("Ada King", "ada@example.com", 2)


async def test_delete_removes_the_stripe_customer_and_the_catalog_customer_after_settle(dev_client, system):
    await create(dev_client, name="Ada")
    await system.settle()
    [cus_id] = system.stripe.customers

    response = await dev_client.delete(f"{DEV_STRIPE}/{cus_id}")
    await system.settle()

    assert (response.status_code, response.json()) == (200, {"id": cus_id, "object": "customer", "deleted": True})
    assert_problem(await dev_client.get(url(1)), 404)


async def test_get_lists_the_stripe_side_newest_first(dev_client, system):
    first = (await dev_client.post(DEV_STRIPE, json={"name": "First"})).json()["id"]
    second = (await dev_client.post(DEV_STRIPE, json={"name": "Second"})).json()["id"]

    body = (await dev_client.get(DEV_STRIPE)).json()

    assert [c["id"] for c in body["data"]] == [second, first]


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_an_unknown_stripe_customer_is_a_404_problem(dev_client, system, method):
    before = await settled_state(system)

    response = await dev_client.request(method, f"{DEV_STRIPE}/cus_missing", json={"name": "X"} if method == "PATCH" else None)

    assert "cus_missing" in assert_problem(response, 404)["detail"]
    assert await settled_state(system) == before


async def test_what_stripe_refuses_is_a_422_problem_naming_the_parameter(dev_client, system):
    before = await settled_state(system)

    response = await dev_client.post(DEV_STRIPE, json={"email": "not-an-email"})

    assert_problem(response, 422, field="email")
    assert await settled_state(system) == before


@pytest.mark.parametrize(
    "payload, field", [({"nickname": "L"}, "nickname"), ({"name": 3}, "name"), ({"metadata": {"k": 1}}, "metadata")]
)
async def test_an_invalid_dev_body_is_422_and_creates_nothing_in_stripe(dev_client, system, payload, field):
    before = await settled_state(system)

    problem = assert_problem(await dev_client.post(DEV_STRIPE, json=payload), 422)

    assert [f for f in fields_of(problem) if f.startswith(field)], problem  # metadata values are named "metadata[...]"

    assert await settled_state(system) == before


async def test_dev_bodies_must_be_json(dev_client, system):
    assert_problem(await dev_client.post(DEV_STRIPE, content=b"name=Linus", headers={"content-type": "text/plain"}), 415)

    assert system.stripe.customers == {}


@pytest.mark.parametrize(
    "method, path",
    [("GET", DEV_STRIPE), ("POST", DEV_STRIPE), ("PATCH", f"{DEV_STRIPE}/cus_x"), ("DELETE", f"{DEV_STRIPE}/cus_x")],
)
async def test_dev_routes_are_absent_without_dev_routes(client, system, method, path):
    response = await client.request(method, path, json={"name": "X"} if method in ("POST", "PATCH") else None)

    assert_problem(response, 404)
    assert system.stripe.customers == {} and system.stripe.calls == []
