"""What every body-carrying catalog call (POST, PUT, PATCH) does with a body it cannot use:
a problem+json answer, and no change anywhere."""

from __future__ import annotations

import json

import pytest

from tests.http.helpers import CUSTOMERS, JSON, asgi_request, assert_problem, settled_state, url

MAX_BODY = 64 * 1024
WRITES = [
    pytest.param("POST", None, id="POST"),
    pytest.param("PUT", 1, id="PUT"),
    pytest.param("PATCH", 1, id="PATCH"),
]


def target(customer_id: int | None) -> str:
    return CUSTOMERS if customer_id is None else url(customer_id)


@pytest.fixture(autouse=True)
async def _existing_customer(synced_customer):
    """Customer 1 exists and is synced, so PUT and PATCH reach the body checks."""
    assert synced_customer["id"] == 1


@pytest.mark.parametrize("method, customer_id", WRITES)
@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"name": "Ada",}', b"not json", b"{'name': 'Ada'}", b'{"name": "Ada"} trailing', b"\xff\xfe{}", b'{"name": "\xff"}'],
    ids=["truncated", "trailing-comma", "bare-words", "single-quotes", "trailing-garbage", "not-utf8", "not-utf8-in-string"],
)
async def test_malformed_json_is_400_and_changes_nothing(client, system, method, customer_id, raw):
    before = await settled_state(system)

    response = await client.request(method, target(customer_id), content=raw, headers=JSON)

    assert_problem(response, 400)
    assert await settled_state(system) == before


@pytest.mark.parametrize("method, customer_id", WRITES)
@pytest.mark.parametrize("raw", [b"", b"   \n"], ids=["empty", "whitespace"])
async def test_an_empty_body_is_400_and_changes_nothing(client, system, method, customer_id, raw):
    before = await settled_state(system)

    response = await client.request(method, target(customer_id), content=raw, headers=JSON)

    assert_problem(response, 400)
    assert await settled_state(system) == before


@pytest.mark.parametrize("method, customer_id", WRITES)
@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "application/xml"},
    ],
    ids=["text-plain", "missing", "form", "xml"],
)
async def test_a_body_that_is_not_declared_json_is_415_and_changes_nothing(client, system, method, customer_id, headers):
    before = await settled_state(system)

    response = await client.request(method, target(customer_id), content=b'{"name": "Grace", "email": null}', headers=headers)

    body = assert_problem(response, 415)
    assert "application/json" in body["detail"]
    assert await settled_state(system) == before


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"])
async def test_json_media_types_with_parameters_or_a_json_suffix_are_accepted(client, content_type):
    response = await client.post(CUSTOMERS, content=b'{"name": "Grace"}', headers={"content-type": content_type})

    assert response.status_code == 201
    assert response.json()["name"] == "Grace"


@pytest.mark.parametrize("method, customer_id", WRITES)
async def test_a_body_over_64_kib_is_413_and_changes_nothing(client, system, method, customer_id):
    before = await settled_state(system)
    raw = json.dumps({"name": "Grace", "email": None, "x": "y" * MAX_BODY}).encode()

    response = await client.request(method, target(customer_id), content=raw, headers=JSON)

    assert_problem(response, 413)
    assert await settled_state(system) == before


async def test_a_body_just_under_the_limit_is_read_and_judged_on_its_content(client):
    padding = MAX_BODY - len(b'{"name": "Grace"}') - 1
    raw = b'{"name": "Grace"}' + b" " * padding  # JSON allows trailing whitespace

    response = await client.post(CUSTOMERS, content=raw, headers=JSON)

    assert len(raw) < MAX_BODY
    assert response.status_code == 201


async def test_a_streamed_body_over_64_kib_without_content_length_is_413_and_changes_nothing(client, system):
    before = await settled_state(system)
    chunks = [b" " * 8192] * 9 + [b'{"name": "Grace"}']

    status, headers, body = await asgi_request(client.app, "POST", CUSTOMERS, [(b"content-type", b"application/json")], chunks)

    assert status == 413
    assert headers[b"content-type"] == b"application/problem+json"
    assert json.loads(body)["status"] == 413
    assert await settled_state(system) == before


async def test_a_content_length_over_the_limit_is_413_before_the_body_is_read(client, system):
    before = await settled_state(system)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(MAX_BODY + 1).encode())]

    status, _, _ = await asgi_request(client.app, "POST", CUSTOMERS, headers, [b'{"name": "Grace"}'])

    assert status == 413
    assert await settled_state(system) == before


@pytest.mark.parametrize("method, customer_id", WRITES)
@pytest.mark.parametrize("raw", [b"[]", b"null", b'"Grace"'], ids=["array", "null", "string"])
async def test_a_json_body_that_is_not_an_object_is_422_naming_the_body_and_changes_nothing(
    client, system, method, customer_id, raw
):
    before = await settled_state(system)

    response = await client.request(method, target(customer_id), content=raw, headers=JSON)

    assert_problem(response, 422, field="body")
    assert await settled_state(system) == before
