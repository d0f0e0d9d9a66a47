"""DELETE /api/v1/customers/{id}: gone here at once, gone from Stripe after sync."""

from __future__ import annotations

from tests.http.helpers import CUSTOMERS, assert_problem, create, settled_state, url


async def test_delete_returns_204_with_no_body(client, synced_customer):
    response = await client.delete(url(1))

    assert response.status_code == 204
    assert response.content == b""


async def test_a_deleted_customer_is_404_on_get_at_once(client, synced_customer):
    await client.delete(url(1))

    assert_problem(await client.get(url(1)), 404)
    assert (await client.get(CUSTOMERS)).json()["data"] == []


async def test_a_deleted_customer_is_removed_from_stripe_after_settle(client, system, synced_customer):
    external_id = (await client.get(url(1))).json()["mappings"][0]["external_id"]
    assert external_id in system.stripe.customers

    await client.delete(url(1))
    await system.settle()

    assert external_id not in system.stripe.customers
    assert external_id in system.stripe.deleted


async def test_deleting_a_customer_never_synced_removes_it_without_calling_stripe(client, system):
    await create(client, name="Ada")
    await client.delete(url(1))

    await system.settle()

    assert system.stripe.customers == {}
    assert [method for method, _ in system.stripe.calls] == []


async def test_delete_again_is_404_and_changes_nothing(client, system, synced_customer):
    assert (await client.delete(url(1))).status_code == 204
    before = await settled_state(system)

    assert_problem(await client.delete(url(1)), 404)

    assert await settled_state(system) == before


async def test_delete_of_an_unknown_id_is_404(client, system, synced_customer):
    before = await settled_state(system)

    assert_problem(await client.delete(url(2)), 404)
    assert_problem(await client.delete(url("two")), 404)

    assert await settled_state(system) == before


async def test_delete_with_the_current_etag_deletes(client, synced_customer):
    etag = (await client.get(url(1))).headers["etag"]

    assert (await client.delete(url(1), headers={"if-match": etag})).status_code == 204
    assert_problem(await client.get(url(1)), 404)


async def test_delete_with_a_stale_etag_is_412_and_keeps_the_customer(client, system, synced_customer):
    await client.patch(url(1), json={"name": "Ada King"})
    before = await settled_state(system)

    body = assert_problem(await client.delete(url(1), headers={"if-match": '"1"'}), 412)

    assert body["current_version"] == 2
    assert await settled_state(system) == before
    assert (await client.get(url(1))).json()["name"] == "Ada King"


async def test_delete_with_a_garbage_if_match_is_422_and_keeps_the_customer(client, system, synced_customer):
    before = await settled_state(system)

    assert_problem(await client.delete(url(1), headers={"if-match": "yesterday"}), 422, field="If-Match")

    assert await settled_state(system) == before


async def test_deleting_one_customer_leaves_the_others_alone(client, system):
    await create(client, name="Ada")
    await create(client, name="Grace")
    await system.settle()

    await client.delete(url(1))
    await system.settle()

    assert [c["name"] for c in (await client.get(CUSTOMERS)).json()["data"]] == ["Grace"]
    assert [c["name"] for c in system.stripe.customers.values()] == ["Grace"]
