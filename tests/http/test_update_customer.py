"""PUT and PATCH /api/v1/customers/{id}: replace, partial change, null clears, If-Match."""

from __future__ import annotations

import pytest

from tests.http.helpers import assert_problem, create, outbound_count, settled_state, stripe_twin, url


async def external_id(client, customer_id: int) -> str:
    return (await client.get(url(customer_id))).json()["mappings"][0]["external_id"]


# -- PUT --------------------------------------------------------------------------------------------


async def test_put_replaces_both_fields_and_bumps_the_version_and_etag(client, synced_customer):
    response = await client.put(url(1), json={"name": " Grace Hopper ", "email": "grace@navy.mil"})

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["email"], body["version"]) == ("Grace Hopper", "grace@navy.mil", 2)
    assert response.headers["etag"] == '"2"'
    assert (await client.get(url(1))).json()["name"] == "Grace Hopper"


async def test_put_reaches_stripe_after_settle(client, system, synced_customer):
    await client.put(url(1), json={"name": "Grace Hopper", "email": "grace@navy.mil"})

    await system.settle()

    twin = stripe_twin(system, await external_id(client, 1))
    assert (twin["name"], twin["email"]) == ("Grace Hopper", "grace@navy.mil")


async def test_put_with_null_clears_the_field_here_and_in_stripe(client, system, synced_customer):
    response = await client.put(url(1), json={"name": "Ada Lovelace", "email": None})
    await system.settle()

    assert response.json()["email"] is None
    assert stripe_twin(system, await external_id(client, 1))["email"] is None


@pytest.mark.parametrize("payload, missing", [({"name": "Grace"}, "email"), ({"email": "g@example.com"}, "name"), ({}, None)])
async def test_put_requires_both_fields_and_names_the_missing_one(client, system, synced_customer, payload, missing):
    before = await settled_state(system)

    body = assert_problem(await client.put(url(1), json=payload), 422, field=missing)

    if missing is None:
        assert {e["field"] for e in body["errors"]} & {"name", "email"}
    assert await settled_state(system) == before


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"name": "  ", "email": None}, "name"),
        ({"name": None, "email": "bad"}, "email"),
        ({"name": 5, "email": None}, "name"),
        ({"name": "A", "email": None, "vip": True}, "vip"),
    ],
    ids=["blank-name", "invalid-email", "wrong-type", "unknown-field"],
)
async def test_put_with_an_invalid_field_is_422_and_changes_nothing(client, system, synced_customer, payload, field):
    before = await settled_state(system)

    assert_problem(await client.put(url(1), json=payload), 422, field=field)

    assert await settled_state(system) == before


async def test_put_with_the_same_values_keeps_the_version_and_emits_nothing(client, system, synced_customer):
    before = await settled_state(system)

    response = await client.put(url(1), json={"name": "Ada Lovelace", "email": "ada@example.com"})

    assert (response.status_code, response.json()["version"], response.headers["etag"]) == (200, 1, '"1"')
    assert await settled_state(system) == before


async def test_put_of_an_unknown_customer_is_404_and_creates_nothing(client, system):
    before = await settled_state(system)

    assert_problem(await client.put(url(7), json={"name": "Ghost", "email": None}), 404)

    assert await settled_state(system) == before


# -- PATCH ------------------------------------------------------------------------------------------


async def test_patch_changes_only_the_given_field(client, system, synced_customer):
    response = await client.patch(url(1), json={"email": " ada@analytical.engine "})
    await system.settle()

    body = response.json()
    assert (body["name"], body["email"], body["version"]) == ("Ada Lovelace", "ada@analytical.engine", 2)
    assert response.headers["etag"] == '"2"'
    twin = stripe_twin(system, await external_id(client, 1))
    assert (twin["name"], twin["email"]) == ("Ada Lovelace", "ada@analytical.engine")


async def test_patch_with_null_clears_only_that_field(client, system, synced_customer):
    response = await client.patch(url(1), json={"name": None})
    await system.settle()

    assert (response.json()["name"], response.json()["email"]) == (None, "ada@example.com")
    assert stripe_twin(system, await external_id(client, 1))["name"] is None


async def test_patch_with_an_empty_object_changes_nothing_and_emits_no_event(client, system, synced_customer):
    before = await settled_state(system)
    published = outbound_count(system)

    response = await client.patch(url(1), json={})

    assert response.status_code == 200
    assert (response.json()["version"], response.headers["etag"]) == (1, '"1"')
    assert await settled_state(system) == before
    assert outbound_count(system) == published


async def test_patch_with_the_current_value_does_not_move_the_version(client, system, synced_customer):
    before = await settled_state(system)

    response = await client.patch(url(1), json={"name": "  Ada Lovelace  "})

    assert response.json()["version"] == 1
    assert await settled_state(system) == before


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"name": ""}, "name"),
        ({"email": "ada@"}, "email"),
        ({"name": "x" * 257}, "name"),
        ({"name": "a\tb"}, "name"),
        ({"email": 3}, "email"),
        ({"nickname": "Ada"}, "nickname"),
    ],
    ids=["empty-name", "invalid-email", "long-name", "tab-in-name", "wrong-type", "unknown-field"],
)
async def test_patch_with_an_invalid_field_is_422_and_changes_nothing(client, system, synced_customer, payload, field):
    before = await settled_state(system)

    assert_problem(await client.patch(url(1), json=payload), 422, field=field)

    assert await settled_state(system) == before


async def test_patch_of_an_unknown_customer_is_404(client, system):
    before = await settled_state(system)

    assert_problem(await client.patch(url(3), json={"name": "Ghost"}), 404)

    assert await settled_state(system) == before


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_writing_to_a_deleted_customer_is_404(client, system, synced_customer, method):
    assert (await client.delete(url(1))).status_code == 204
    before = await settled_state(system)

    assert_problem(await client.request(method, url(1), json={"name": "Back", "email": None}), 404)

    assert await settled_state(system) == before


# -- If-Match (both verbs) --------------------------------------------------------------------------

BODIES = {"PUT": {"name": "Grace", "email": None}, "PATCH": {"name": "Grace"}}


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(
    "if_match",
    ['"1"', "*", ' "1" ', '"1", "2"', '"2", "1"', 'W/"1", "1"', '"a,b", "1"', '"1",,'],
    ids=["strong", "any", "padded", "list", "list-later", "weak-and-strong", "comma-in-tag", "empty-elements"],
)
async def test_if_match_with_the_current_etag_lets_the_write_through(client, synced_customer, method, if_match):
    response = await client.request(method, url(1), json=BODIES[method], headers={"if-match": if_match})

    assert response.status_code == 200
    assert response.json()["name"] == "Grace"


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_if_match_with_a_stale_etag_is_412_with_the_current_version_and_changes_nothing(
    client, system, synced_customer, method
):
    etag = (await client.get(url(1))).headers["etag"]
    await client.patch(url(1), json={"email": "ada@analytical.engine"})  # someone else's write: now version 2
    before = await settled_state(system)

    response = await client.request(method, url(1), json=BODIES[method], headers={"if-match": etag})

    body = assert_problem(response, 412)
    assert body["current_version"] == 2
    assert await settled_state(system) == before


async def test_an_empty_patch_with_a_stale_etag_is_still_412(client, synced_customer):
    await client.patch(url(1), json={"name": "Ada King"})

    body = assert_problem(await client.patch(url(1), json={}, headers={"if-match": '"1"'}), 412)

    assert body["current_version"] == 2


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("if_match", ['W/"1"', 'W/"1", W/"2"', '"abc"', '"-1"', '"01"', '"2", "3"', '"' + "9" * 19 + '"', '""'])
async def test_if_match_naming_no_current_strong_tag_is_412_and_changes_nothing(
    client, system, synced_customer, method, if_match
):
    """RFC 9110 strong comparison: a weak tag never matches, and a well-formed tag this API never
    issued matches nothing; neither is malformed."""
    before = await settled_state(system)

    response = await client.request(method, url(1), json=BODIES.get(method), headers={"if-match": if_match})

    assert assert_problem(response, 412)["current_version"] == 1
    assert await settled_state(system) == before


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("if_match", ["garbage", "1", '"1', '"1" "2"', '"1"x', '*, "1"', "W/1", ", ", ""])
async def test_a_malformed_if_match_is_422_naming_if_match(client, system, synced_customer, method, if_match):
    before = await settled_state(system)

    response = await client.request(method, url(1), json=BODIES.get(method), headers={"if-match": if_match})

    assert_problem(response, 422, field="If-Match")
    assert await settled_state(system) == before


async def test_if_match_on_an_unknown_customer_is_404_not_412(client):
    await create(client, name="Ada")

    assert_problem(await client.patch(url(9), json={"name": "X"}, headers={"if-match": '"1"'}), 404)
