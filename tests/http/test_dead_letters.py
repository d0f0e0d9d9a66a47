"""/api/v1/dead-letters: list what the worker gave up on, replay it after the fix."""

from __future__ import annotations

import msgspec
import pytest

from domain.messages import OUTBOUND_TOPIC, CustomerChanged
from tests.http.helpers import JSON, assert_problem, create, settled_state, url
from tests.support.refusals import REFUSAL, stripe_refusing

DEAD_LETTERS = "/api/v1/dead-letters"
REPLAY = f"{DEAD_LETTERS}/replay"


@pytest.fixture
async def refused(client, system) -> dict:
    """Ada, whose create Stripe refused for good: one dead letter."""
    with stripe_refusing(system.stripe):
        customer = await create(client, name="Ada", email="ada@example.com")
        await system.settle()
    return customer


async def listed(client, **params) -> list[dict]:
    response = await client.get(DEAD_LETTERS, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_no_dead_letters_is_an_empty_list(client):
    assert await listed(client) == []


async def test_a_refused_create_is_listed_with_its_topic_event_error_and_payload(client, system, refused):
    [letter] = await listed(client)
    [envelope] = system.messages(OUTBOUND_TOPIC)
    assert (letter["topic"], letter["event_id"], letter["key"]) == (OUTBOUND_TOPIC, envelope.event_id, str(refused["id"]))
    assert REFUSAL in letter["error"] and letter["replayed_at"] is None and letter["created_at"]
    assert msgspec.json.decode(letter["payload"], type=CustomerChanged).customer_id == refused["id"]


async def test_replaying_by_id_after_the_fix_syncs_the_customer(client, system, refused):
    [letter] = await listed(client)

    response = await client.post(REPLAY, json={"ids": [letter["id"]]})
    await system.settle()

    assert response.status_code == 200 and response.json() == {"replayed": [letter["id"]]}
    [link] = (await client.get(url(refused["id"]))).json()["mappings"]
    assert link["sync_status"] == "synced" and link["external_id"] in system.stripe.customers
    assert await listed(client) == []
    [replayed] = await listed(client, include_replayed="true")
    assert replayed["id"] == letter["id"] and replayed["replayed_at"] is not None


async def test_replaying_all_replays_every_waiting_letter_once(client, system, refused):
    with stripe_refusing(system.stripe):
        await create(client, name="Grace", email="grace@example.com")
        await system.settle()
    ids = sorted(d["id"] for d in await listed(client))

    first = await client.post(REPLAY, json={"all": True})
    second = await client.post(REPLAY, json={"all": True})

    assert first.json() == {"replayed": ids} and second.json() == {"replayed": []}
    await system.settle()
    assert len(system.stripe.customers) == 2


async def test_the_list_is_newest_first_and_limited(client, system, refused):
    with stripe_refusing(system.stripe):
        await create(client, name="Grace", email="grace@example.com")
        system.clock.advance(1)
        await system.settle()
    newest, oldest = await listed(client)
    assert newest["id"] > oldest["id"]
    assert [d["id"] for d in await listed(client, limit=1)] == [newest["id"]]


@pytest.mark.parametrize("limit", ["0", "501", "x"])
async def test_an_out_of_range_limit_is_a_422(client, limit):
    assert_problem(await client.get(DEAD_LETTERS, params={"limit": limit}), 422, field="limit")


async def test_an_unknown_id_is_a_404_naming_it_and_replays_nothing(client, system, refused):
    [letter] = await listed(client)
    before = await settled_state(system)

    response = await client.post(REPLAY, json={"ids": [letter["id"], 999]})

    body = assert_problem(response, 404)
    assert (body["unknown_ids"], body["replayed_ids"]) == ([999], []) and "999" in body["detail"]
    assert await settled_state(system) == before
    assert [d["id"] for d in await listed(client)] == [letter["id"]]


async def test_an_already_replayed_id_is_a_404_naming_it(client, system, refused):
    [letter] = await listed(client)
    await client.post(REPLAY, json={"ids": [letter["id"]]})
    await system.settle()
    before = await settled_state(system)

    response = await client.post(REPLAY, json={"ids": [letter["id"]]})

    body = assert_problem(response, 404)
    assert (body["unknown_ids"], body["replayed_ids"]) == ([], [letter["id"]]) and "already replayed" in body["detail"]
    assert await settled_state(system) == before


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "ids"),
        ({"ids": [1], "all": True}, "all"),
        ({"all": False}, "all"),
        ({"all": None}, "all"),
        ({"ids": []}, "ids"),
        ({"ids": "1"}, "ids"),
        ({"ids": ["one"]}, "ids[0]"),
        ({"all": True, "force": True}, "force"),
    ],
)
async def test_anything_but_exactly_ids_or_all_true_is_a_422_naming_the_field(client, system, refused, body, field):
    before = await settled_state(system)

    assert_problem(await client.post(REPLAY, json=body), 422, field=field)
    assert await settled_state(system) == before


async def test_a_replay_body_must_be_json(client):
    assert_problem(await client.post(REPLAY, content=b'{"all": true}', headers={"content-type": "text/plain"}), 415)
    assert_problem(await client.post(REPLAY, content=b"{all", headers=JSON), 400)


async def test_openapi_lists_the_dead_letter_routes(client):
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    assert "get" in paths[DEAD_LETTERS] and "post" in paths[REPLAY]
    assert "200" in paths[REPLAY]["post"]["responses"]
