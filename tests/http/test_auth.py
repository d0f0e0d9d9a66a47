"""API_TOKEN: every catalog, dead-letter (and dev) call needs the bearer token; /health and webhooks do not."""

from __future__ import annotations

import pytest

from tests.http.helpers import API_TOKEN, CUSTOMERS, DEV_STRIPE, STRIPE_WEBHOOK, assert_problem, settled_state, url

AUTH = {"authorization": f"Bearer {API_TOKEN}"}

PROTECTED = [
    pytest.param("GET", CUSTOMERS, None, id="list"),
    pytest.param("POST", CUSTOMERS, {"name": "Mallory"}, id="create"),
    pytest.param("GET", url(1), None, id="get"),
    pytest.param("PUT", url(1), {"name": "Mallory", "email": None}, id="replace"),
    pytest.param("PATCH", url(1), {"name": "Mallory"}, id="patch"),
    pytest.param("DELETE", url(1), None, id="delete"),
    pytest.param("GET", f"{url(1)}/sync-events", None, id="sync-events"),
    pytest.param("GET", "/api/v1/dead-letters", None, id="dead-letters"),
    pytest.param("POST", "/api/v1/dead-letters/replay", {"all": True}, id="dead-letters-replay"),
    pytest.param("GET", DEV_STRIPE, None, id="dev-list"),
    pytest.param("POST", DEV_STRIPE, {"name": "Mallory"}, id="dev-create"),
]
WRONG_CREDENTIALS = [
    pytest.param({}, id="no-header"),
    pytest.param({"authorization": "Bearer wrong"}, id="wrong-token"),
    pytest.param({"authorization": f"Bearer {API_TOKEN}x"}, id="token-with-suffix"),
    pytest.param({"authorization": f"Bearer {API_TOKEN[:-1]}"}, id="token-prefix"),
    pytest.param({"authorization": f"Basic {API_TOKEN}"}, id="basic-scheme"),
    pytest.param({"authorization": API_TOKEN}, id="no-scheme"),
    pytest.param({"authorization": "Bearer"}, id="empty-bearer"),
    pytest.param({"x-api-token": API_TOKEN}, id="other-header"),
]


@pytest.fixture
async def existing(secured_client, secured_system):
    response = await secured_client.post(CUSTOMERS, json={"name": "Ada", "email": "ada@example.com"}, headers=AUTH)
    assert response.status_code == 201
    await secured_system.settle()
    return response.json()


@pytest.mark.parametrize("headers", WRONG_CREDENTIALS)
@pytest.mark.parametrize("method, path, body", PROTECTED)
async def test_without_the_right_bearer_token_every_call_is_401_and_changes_nothing(
    secured_client, secured_system, existing, method, path, body, headers
):
    before = await settled_state(secured_system)

    response = await secured_client.request(method, path, json=body, headers=headers)

    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert await settled_state(secured_system) == before


async def test_the_token_is_checked_before_the_body(secured_client, secured_system, existing):
    before = await settled_state(secured_system)

    response = await secured_client.post(CUSTOMERS, content=b"not json", headers={"content-type": "text/plain"})

    assert_problem(response, 401)
    assert await settled_state(secured_system) == before


@pytest.mark.parametrize("authorization", [f"Bearer {API_TOKEN}", f"bearer {API_TOKEN}", f"BEARER  {API_TOKEN} "])
async def test_with_the_right_bearer_token_the_catalog_answers(secured_client, existing, authorization):
    response = await secured_client.get(url(existing["id"]), headers={"authorization": authorization})

    assert response.status_code == 200
    assert response.json()["name"] == "Ada"


async def test_with_the_token_every_write_goes_through(secured_client, existing):
    created = await secured_client.post(CUSTOMERS, json={"name": "Grace"}, headers=AUTH)
    patched = await secured_client.patch(url(existing["id"]), json={"name": "Ada King"}, headers=AUTH)
    deleted = await secured_client.delete(url(created.json()["id"]), headers=AUTH)

    assert (created.status_code, patched.status_code, deleted.status_code) == (201, 200, 204)


async def test_health_needs_no_token(secured_client):
    response = await secured_client.get("/health")

    assert (response.status_code, response.json()) == (200, {"status": "healthy"})


async def test_the_stripe_webhook_needs_no_token_only_its_signature(secured_client, secured_system):
    event = {
        "id": "evt_auth",
        "object": "event",
        "type": "customer.created",
        "created": 1767225600,
        "data": {"object": {"id": "cus_auth", "object": "customer", "name": "Grace", "email": None, "metadata": {}}},
    }
    payload, signature = secured_system.stripe.signed_event(event, secured_system.secret)

    response = await secured_client.post(STRIPE_WEBHOOK, content=payload, headers={"stripe-signature": signature})

    assert response.status_code == 200
    assert [m.event_id for m in secured_system.messages("sync.inbound")] == ["evt_auth"]


async def test_without_api_token_configured_no_header_is_needed(client):
    assert (await client.get(CUSTOMERS)).status_code == 200
