"""POST /api/v1/customers: what is created, and that a refused body changes nothing.

Body-level problems (malformed JSON, media type, size) are in ``test_request_bodies.py``.
"""

from __future__ import annotations

import pytest

from tests.http.helpers import CUSTOMERS, JSON, assert_problem, settled_state


async def test_post_returns_201_with_location_and_etag(client):
    response = await client.post(CUSTOMERS, json={"name": "Ada Lovelace", "email": "ada@example.com"})

    assert response.status_code == 201
    body = response.json()
    assert body["id"] == 1 and body["version"] == 1
    assert (body["name"], body["email"]) == ("Ada Lovelace", "ada@example.com")
    assert body["created_at"] == body["updated_at"] == "2026-01-01T00:00:00Z"  # the FakeClock's now
    assert response.headers["location"] == f"{CUSTOMERS}/{body['id']}"
    assert response.headers["etag"] == '"1"'


async def test_location_points_at_the_new_resource(client):
    created = await client.post(CUSTOMERS, json={"name": "Ada"})

    fetched = await client.get(created.headers["location"])

    assert fetched.status_code == 200
    assert fetched.json()["id"] == created.json()["id"]
    assert fetched.headers["etag"] == created.headers["etag"]


async def test_each_post_creates_a_new_customer_with_the_next_id(client):
    ids = [(await client.post(CUSTOMERS, json={"name": n})).json()["id"] for n in ("Ada", "Grace", "Ada")]

    assert ids == [1, 2, 3]


async def test_post_trims_surrounding_whitespace(client):
    body = (await client.post(CUSTOMERS, json={"name": "  Ada Lovelace\t", "email": "\n ada@example.com  "})).json()

    assert (body["name"], body["email"]) == ("Ada Lovelace", "ada@example.com")


@pytest.mark.parametrize(
    "payload, expected",
    [
        ({}, (None, None)),
        ({"name": None, "email": None}, (None, None)),
        ({"name": "Ada"}, ("Ada", None)),
        ({"email": "ada@example.com"}, (None, "ada@example.com")),
    ],
    ids=["empty-object", "explicit-nulls", "name-only", "email-only"],
)
async def test_name_and_email_are_optional(client, payload, expected):
    response = await client.post(CUSTOMERS, json=payload)

    assert response.status_code == 201
    assert (response.json()["name"], response.json()["email"]) == expected


async def test_fields_at_their_maximum_length_are_accepted(client):
    name = "N" * 256
    email = "a" * 64 + "@" + "d" * 63 + "." + "d" * 63 + "." + "d" * 63 + "." + "e" * 57 + ".com"  # the longest valid
    assert len(email) == 64 + 1 + 253

    response = await client.post(CUSTOMERS, json={"name": name, "email": email})

    assert response.status_code == 201
    assert (response.json()["name"], response.json()["email"]) == (name, email)


async def test_a_created_customer_is_published_and_reaches_stripe(client, system):
    created = (await client.post(CUSTOMERS, json={"name": "Ada", "email": "ada@example.com"})).json()

    await system.settle()

    [message] = system.messages("sync.outbound")
    assert message.key == str(created["id"])
    assert [(c["name"], c["email"]) for c in system.stripe.customers.values()] == [("Ada", "ada@example.com")]


INVALID_FIELDS = [
    pytest.param({"email": "not-an-email"}, "email", id="email-without-at"),
    pytest.param({"email": "ada@localhost"}, "email", id="email-without-domain-dot"),
    pytest.param({"email": "ada@@example.com"}, "email", id="email-two-ats"),
    pytest.param({"email": "   "}, "email", id="blank-email"),
    pytest.param({"name": "   "}, "name", id="blank-name"),
    pytest.param({"name": ""}, "name", id="empty-name"),
    pytest.param({"name": "N" * 257}, "name", id="name-over-256"),
    pytest.param({"email": "a@" + "b" * 520 + ".com"}, "email", id="email-over-512"),
    pytest.param({"name": "Ada\x00Lovelace"}, "name", id="nul-in-name"),
    pytest.param({"name": "Ada\nLovelace"}, "name", id="newline-in-name"),
    pytest.param({"name": "Ada\x1b[31m"}, "name", id="escape-in-name"),
    pytest.param({"email": "ada\x07@example.com"}, "email", id="bell-in-email"),
    pytest.param({"name": 1}, "name", id="name-is-int"),
    pytest.param({"name": ["Ada"]}, "name", id="name-is-list"),
    pytest.param({"email": True}, "email", id="email-is-bool"),
    pytest.param({"email": {"address": "ada@example.com"}}, "email", id="email-is-object"),
    pytest.param({"name": "Ada", "phone": "+44"}, "phone", id="unknown-field"),
    pytest.param({"id": 7, "name": "Ada"}, "id", id="read-only-field"),
]


@pytest.mark.parametrize("payload, field", INVALID_FIELDS)
async def test_post_with_an_invalid_field_is_422_naming_it_and_creates_nothing(client, system, payload, field):
    before = await settled_state(system)

    response = await client.post(CUSTOMERS, json=payload)

    body = assert_problem(response, 422, field=field)
    assert body["detail"]
    assert await settled_state(system) == before


async def test_length_errors_say_the_limit(client):
    name = assert_problem(await client.post(CUSTOMERS, json={"name": "N" * 257}), 422)
    email = assert_problem(await client.post(CUSTOMERS, json={"email": "a@" + "b" * 520 + ".com"}), 422)

    assert "256" in name["errors"][0]["reason"]
    assert "512" in email["errors"][0]["reason"]


async def test_every_invalid_field_is_reported_at_once(client, system):
    before = await settled_state(system)

    response = await client.post(CUSTOMERS, json={"name": "  ", "email": "nope"})

    assert sorted(f for f in [e["field"] for e in assert_problem(response, 422)["errors"]]) == ["email", "name"]
    assert await settled_state(system) == before


async def test_a_rejected_post_after_valid_ones_leaves_them_alone(client, system):
    await client.post(CUSTOMERS, json={"name": "Ada"})
    before = await settled_state(system)

    assert_problem(await client.post(CUSTOMERS, json={"name": "\x00"}), 422, field="name")

    assert await settled_state(system) == before
    assert before["outbox"] == 1 and len(before["stripe"]) == 1
    # ids are not consumed by a rejected request
    assert (await client.post(CUSTOMERS, json={"name": "Grace"})).json()["id"] == 2


@pytest.mark.parametrize(
    "raw",
    [b"[]", b'[{"name": "Ada"}]', b"null", b'"Ada"', b"42", b"true"],
    ids=["empty-array", "array-of-object", "null", "string", "number", "boolean"],
)
async def test_a_json_body_that_is_not_an_object_is_422_naming_the_body(client, system, raw):
    """Well-formed JSON of the wrong shape is a 422 on ``body`` (unparseable JSON is a 400)."""
    before = await settled_state(system)

    response = await client.post(CUSTOMERS, content=raw, headers=JSON)

    assert "Expected `object`" in assert_problem(response, 422, field="body")["errors"][0]["reason"]
    assert await settled_state(system) == before
