"""What reaches the logs: a client's error (4xx) logs no stack trace, even with Litestar's debug
on, and no secret (API token, webhook secret) is ever logged, whatever the request."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from litestar.testing import AsyncTestClient

from entrypoints.http.app import create_app
from tests.http.helpers import API_TOKEN, CUSTOMERS, JSON, STRIPE_WEBHOOK, url
from tests.support.system import WEBHOOK_SECRET

AUTH = {"authorization": f"Bearer {API_TOKEN}"}
DEEP = b"[" * 1000 + b"]" * 1000

CLIENT_ERRORS = [
    pytest.param("GET", CUSTOMERS, {"authorization": f"Bearer {API_TOKEN}x"}, None, 401, id="wrong-token"),
    pytest.param("POST", CUSTOMERS, {**AUTH, **JSON}, DEEP, 400, id="deep-json"),
    pytest.param("POST", CUSTOMERS, {**AUTH, **JSON}, b'{"name": ', 400, id="malformed-json"),
    pytest.param(
        "POST", CUSTOMERS, {**AUTH, **JSON}, b'{"name": "x", "token": "' + API_TOKEN.encode() + b'"}', 422, id="unknown-field"
    ),
    pytest.param("POST", CUSTOMERS, AUTH, b"name=x", 415, id="form-body"),
    pytest.param("GET", f"{CUSTOMERS}?email=a%00b", AUTH, None, 422, id="nul-in-query"),
    pytest.param("GET", f"{CUSTOMERS}?limit=1000", AUTH, None, 422, id="limit-out-of-range"),
    pytest.param("GET", url("+1"), AUTH, None, 404, id="non-canonical-id"),
    pytest.param("PATCH", url(1), {**AUTH, **JSON, "if-match": "garbage"}, b"{}", 422, id="malformed-if-match"),
    pytest.param("PATCH", url(1), {**AUTH, **JSON, "if-match": 'W/"1"'}, b"{}", 412, id="weak-if-match"),
    pytest.param("POST", STRIPE_WEBHOOK, {"stripe-signature": f"t=1,v1={WEBHOOK_SECRET}"}, b"{}", 400, id="forged-webhook"),
    pytest.param("DELETE", CUSTOMERS, AUTH, None, 405, id="wrong-method"),
    pytest.param("GET", "/nope", AUTH, None, 404, id="unknown-route"),
]


@pytest.fixture
def every_log(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG on every logger, Litestar's too (its own logger does not propagate to root)."""
    litestar = logging.getLogger("litestar")
    litestar.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.DEBUG):
            yield caplog
    finally:
        litestar.removeHandler(caplog.handler)


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
@pytest.mark.parametrize("method, path, headers, body, status", CLIENT_ERRORS)
async def test_a_client_error_logs_no_trace_and_no_secret(secured_system, every_log, debug, method, path, headers, body, status):
    async with AsyncTestClient(app=create_app(secured_system.container, debug=debug)) as client:
        assert (await client.post(CUSTOMERS, json={"name": "Ada"}, headers=AUTH)).status_code == 201
        every_log.clear()

        response = await client.request(method, path, headers=headers, content=body)

    assert response.status_code == status, response.text
    logged = every_log.text + "".join(str(r.exc_info) for r in every_log.records if r.exc_info)
    assert "Traceback" not in logged and not any(r.exc_info for r in every_log.records)
    assert API_TOKEN not in logged and WEBHOOK_SECRET not in logged
    assert API_TOKEN not in response.text and WEBHOOK_SECRET not in response.text
