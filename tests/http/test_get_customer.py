"""GET /api/v1/customers/{id} and /{id}/sync-events: one customer, its links and its history."""

from __future__ import annotations

import pytest

from tests.http.helpers import assert_problem, create, stripe_twin, url
from tests.support.system import tagged


async def test_get_returns_the_customer_with_an_etag_of_its_version(client):
    created = await create(client, name="Ada Lovelace", email="ada@example.com")

    response = await client.get(url(created["id"]))

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in created} == created
    assert body["version"] == 1
    assert response.headers["etag"] == '"1"'


async def test_before_sync_the_stripe_mapping_is_pending_without_an_external_id(client):
    created = await create(client, name="Ada", email="ada@example.com")

    body = (await client.get(url(created["id"]))).json()

    assert body["mappings"] == [
        {"system": "stripe", "external_id": None, "sync_status": "pending", "last_synced_at": None, "broken": None}
    ]


async def test_after_settle_the_stripe_mapping_is_synced_with_the_stripe_customer_id(client, system):
    created = await create(client, name="Ada", email="ada@example.com")

    await system.settle()
    [mapping] = (await client.get(url(created["id"]))).json()["mappings"]

    assert mapping["system"] == "stripe"
    assert mapping["sync_status"] == "synced"
    assert mapping["external_id"].startswith("cus_")
    assert mapping["last_synced_at"] is not None
    twin = stripe_twin(system, mapping["external_id"])
    assert (twin["name"], twin["email"], tagged(twin["metadata"])) == ("Ada", "ada@example.com", await system.tags(created["id"]))


async def test_a_local_change_makes_the_mapping_pending_again_until_the_next_sync(client, system, synced_customer):
    customer_url = url(synced_customer["id"])
    assert (await client.patch(customer_url, json={"name": "Ada King"})).status_code == 200

    pending = (await client.get(customer_url)).json()["mappings"][0]
    await system.settle()
    synced = (await client.get(customer_url)).json()["mappings"][0]

    assert pending["sync_status"] == "pending"
    assert synced["sync_status"] == "synced"
    assert pending["external_id"] == synced["external_id"]
    assert stripe_twin(system, synced["external_id"])["name"] == "Ada King"


async def test_the_etag_follows_the_version_after_a_change(client, synced_customer):
    customer_url = url(synced_customer["id"])
    await client.patch(customer_url, json={"email": "ada@analytical.engine"})

    response = await client.get(customer_url)

    assert response.json()["version"] == 2
    assert response.headers["etag"] == '"2"'


async def test_get_of_an_unknown_id_is_a_404_problem(client):
    await create(client, name="Ada")

    body = assert_problem(await client.get(url(999)), 404)

    assert "999" in body["detail"]


async def test_get_of_a_deleted_customer_is_a_404_problem(client):
    created = await create(client, name="Ada")
    assert (await client.delete(url(created["id"]))).status_code == 204

    assert_problem(await client.get(url(created["id"])), 404)


@pytest.mark.parametrize("customer_id", ["abc", "1.5", "1e3", "0x1", "%20"])
async def test_a_non_integer_id_is_a_404_problem(client, customer_id):
    await create(client, name="Ada")

    assert_problem(await client.get(url(customer_id)), 404)


# -- sync events ------------------------------------------------------------------------------------


async def test_sync_events_of_a_new_customer_are_empty_before_settle(client):
    created = await create(client, name="Ada")

    response = await client.get(f"{url(created['id'])}/sync-events")

    assert response.status_code == 200
    assert response.json() == []


async def test_sync_events_contain_the_succeeded_outbound_create_after_settle(client, system):
    created = await create(client, name="Ada", email="ada@example.com")
    await system.settle()

    events = (await client.get(f"{url(created['id'])}/sync-events")).json()

    outbound = [e for e in events if e["direction"] == "outbound"]
    assert [(e["system"], e["operation"], e["status"], e["attempts"], e["last_error"]) for e in outbound] == [
        ("stripe", "create", "succeeded", 1, None)
    ]
    assert set(outbound[0]) == {
        "event_id",
        "direction",
        "system",
        "operation",
        "status",
        "attempts",
        "last_error",
        "note",
        "created_at",
        "updated_at",
    }


async def test_sync_events_are_newest_first(client, system, synced_customer):
    events_url = f"{url(synced_customer['id'])}/sync-events"
    await client.patch(url(synced_customer["id"]), json={"name": "Ada King"})
    await system.settle()

    events = (await client.get(events_url)).json()
    outbound = [(e["operation"], e["status"]) for e in events if e["direction"] == "outbound"]

    assert outbound == [("update", "succeeded"), ("create", "succeeded")]
    assert events[0]["operation"] == "update"


async def test_sync_events_limit_keeps_the_newest(client, system, synced_customer):
    events_url = f"{url(synced_customer['id'])}/sync-events"
    await client.patch(url(synced_customer["id"]), json={"name": "Ada King"})
    await system.settle()
    everything = (await client.get(events_url)).json()

    newest = (await client.get(events_url, params={"limit": 1})).json()

    assert len(everything) > 1
    assert newest == everything[:1]


@pytest.mark.parametrize("limit", ["0", "501", "many"])
async def test_sync_events_limit_out_of_bounds_is_422_naming_limit(client, synced_customer, limit):
    response = await client.get(f"{url(synced_customer['id'])}/sync-events", params={"limit": limit})

    assert_problem(response, 422, field="limit")


async def test_sync_events_of_an_unknown_id_is_a_404_problem(client):
    assert_problem(await client.get(f"{url(42)}/sync-events"), 404)


async def test_sync_events_of_a_deleted_customer_stay_readable_and_end_with_the_delete(client, system, synced_customer):
    assert (await client.delete(url(synced_customer["id"]))).status_code == 204
    await system.settle()

    response = await client.get(f"{url(synced_customer['id'])}/sync-events")

    assert response.status_code == 200
    outbound = [e["operation"] for e in response.json() if e["direction"] == "outbound"]
    assert outbound == ["delete", "create"]
