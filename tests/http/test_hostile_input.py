"""Issue 9, "no 5xx from any input": nesting that overflows the JSON decoder, ids spelt otherwise
than canonically, control characters in parameters, If-Match lists. Each answer is a problem
naming what is wrong, and changes nothing. (What differed on PostgreSQL is in
tests/contract/test_http_edges.py, on both backends.)"""

from __future__ import annotations

import json

import pytest
import stripe

from tests.http.helpers import (
    CUSTOMERS,
    DEV_STRIPE,
    JSON,
    STRIPE_WEBHOOK,
    asgi_request,
    assert_problem,
    create,
    settled_state,
    url,
)
from tests.http.test_webhooks import inbound_ids
from tests.support.system import WEBHOOK_SECRET

DEPTH = 1000  # ~2 KB of brackets: past msgspec's recursion limit
DEEP_BODIES = {
    "array": b"[" * DEPTH + b"]" * DEPTH,
    "object": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "in-a-field": b'{"name": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    "in-an-unknown-field": b'{"zzz": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
}
JSON_ROUTES = [("POST", CUSTOMERS), ("PUT", url(1)), ("PATCH", url(1)), ("POST", "/api/v1/dead-letters/replay")]


@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
@pytest.mark.parametrize("method, path", JSON_ROUTES)
async def test_json_nested_a_thousand_deep_is_400_and_changes_nothing(client, system, method, path, body):
    await create(client, name="Ada")
    before = await settled_state(system)

    response = await client.request(method, path, content=body, headers=JSON)

    assert "nested too deeply" in assert_problem(response, 400)["detail"]
    assert await settled_state(system) == before


@pytest.mark.parametrize("method, path", [("POST", DEV_STRIPE), ("PATCH", f"{DEV_STRIPE}/cus_x")])
async def test_deep_json_on_the_dev_routes_is_400(dev_client, method, path):
    assert_problem(await dev_client.request(method, path, content=DEEP_BODIES["object"], headers=JSON), 400)


def deep(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "payload",
    [
        deep(),
        '{"id": "evt_1", "type": "customer.created", "created": 1767225600, "data": {"object": {"id": "cus_1", "x": '
        + deep()
        + "}}}",
        '{"id": "evt_1", "type": "customer.updated", "created": 1767225600, "data": {"object": {"id": "cus_1"}, '
        '"previous_attributes": ' + deep() + "}}",
        '{"id": "evt_1", "type": "invoice.paid", "created": 1767225600, "data": {"object": {"x": ' + deep() + "}}}",
    ],
    ids=["whole-body", "in-the-object", "in-previous-attributes", "ignored-type"],
)
async def test_a_signed_webhook_nested_a_thousand_deep_is_400(client, system, payload):
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)

    response = await client.post(STRIPE_WEBHOOK, content=payload.encode(), headers={"stripe-signature": header})

    assert_problem(response, 400)
    assert inbound_ids(system) == []


# -- ids: one spelling per customer ----------------------------------------------------------------

# Spellings int() reads as 1, others it refuses, and canonical ids no customer has (0 is never
# issued; beyond a bigint none can be).
NAMING_NO_CUSTOMER = [
    "+1",
    "%201",
    "1%20",
    "%2B1",
    "01",
    "001",
    "1_000",
    "١",
    "%D9%A1",
    "１",
    "-1",
    "1.0",
    "1e0",
    "0x1",
    " 1",
    "0",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999",
]
ID_ROUTES = [("GET", ""), ("HEAD", ""), ("PUT", ""), ("PATCH", ""), ("GET", "/sync-events"), ("DELETE", "")]
BODIES = {"PUT": {"name": "Grace", "email": None}, "PATCH": {"name": "Grace"}}


@pytest.mark.parametrize("spelling", NAMING_NO_CUSTOMER)
@pytest.mark.parametrize("method, suffix", ID_ROUTES)
async def test_only_the_canonical_spelling_of_an_id_names_a_customer(client, system, method, suffix, spelling):
    await create(client, name="Ada")
    before = await settled_state(system)

    response = await client.request(method, f"{url(spelling)}{suffix}", json=BODIES.get(method))

    assert response.status_code == 404, response.text
    if method != "HEAD":
        assert_problem(response, 404)
    assert await settled_state(system) == before


async def test_the_canonical_id_still_names_the_customer_on_every_route(client):
    created = await create(client, name="Ada")

    for method, suffix in ID_ROUTES:
        response = await client.request(method, f"{url(created['id'])}{suffix}", json=BODIES.get(method))
        assert response.status_code in (200, 204), (method, suffix, response.text)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"ids": [0]}, "ids[0]"),
        ({"ids": [-1]}, "ids[0]"),
        ({"ids": [2**63]}, "ids[0]"),
        ({"ids": ["1"]}, "ids[0]"),
        ({"ids": [1.0]}, "ids[0]"),
        ({"ids": [True]}, "ids[0]"),
        ({"all": "true"}, "all"),
        ({"all": 1}, "all"),
    ],
    ids=["zero", "negative", "beyond-bigint", "string", "float", "bool", "all-as-string", "all-as-number"],
)
async def test_a_replay_takes_only_json_integers_as_ids_and_true_as_all(client, system, body, field):
    before = await settled_state(system)

    response = await client.post("/api/v1/dead-letters/replay", json=body)

    assert_problem(response, 422, field=field)
    assert await settled_state(system) == before


# -- control characters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, field",
    [
        (f"{CUSTOMERS}?email=a%00b", "email"),
        (f"{CUSTOMERS}?email=a%0Ab%40example.com", "email"),
        (f"{CUSTOMERS}?cursor=%00", "cursor"),
        (f"{CUSTOMERS}?limit=1%00", "limit"),
        (f"{url(1)}/sync-events?limit=%00", "limit"),
        ("/api/v1/dead-letters?limit=%00", "limit"),
        (f"{url('1%00')}", "customer_id"),
    ],
)
async def test_a_control_character_in_a_query_or_path_value_is_422_naming_it(client, path, field):
    await create(client, name="Ada")

    assert_problem(await client.get(path), 422, field=field)


async def test_a_control_character_in_the_webhook_system_is_422(client, system):
    assert_problem(await client.post("/api/v1/webhooks/stripe%00", content=b"{}"), 422, field="system")


# -- If-Match ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lines", "status"), [([b'"9"', b'"1"'], 200), ([b'W/"1"', b'"9"'], 412), ([b'"1"', b"garbage"], 422)])
async def test_several_if_match_lines_are_one_list(client, system, lines, status):
    await create(client, name="Ada")
    headers = [(b"content-type", b"application/json")] + [(b"if-match", line) for line in lines]

    code, _, body = await asgi_request(client.app, "PATCH", url(1), headers, [b'{"name": "Grace"}'])

    assert code == status, body
    if status == 422:
        assert [e["field"] for e in json.loads(body)["errors"]] == ["If-Match"]
