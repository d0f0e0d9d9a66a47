"""Assertions and shortcuts shared by the HTTP tests."""

from __future__ import annotations

import copy
from typing import Any

from httpx import Response

from tests.support.system import EmbeddedSystem

CUSTOMERS = "/api/v1/customers"
STRIPE_WEBHOOK = "/api/v1/webhooks/stripe"
DEV_STRIPE = "/dev/stripe/customers"
PROBLEM_JSON = "application/problem+json"
API_TOKEN = "s3cret"
JSON = {"content-type": "application/json"}


def url(customer_id: int | str) -> str:
    return f"{CUSTOMERS}/{customer_id}"


def assert_problem(response: Response, status: int, *, field: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with ``status``, a title, no server internals, and for 422 the offending fields."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM_JSON
    assert "Traceback" not in response.text and 'File "' not in response.text
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    if status == 422:
        assert body["errors"], body
        for error in body["errors"]:
            assert isinstance(error["field"], str) and error["field"], body
            assert isinstance(error["reason"], str) and error["reason"], body
    if field is not None:
        assert field in fields_of(body), body
    return body


def fields_of(problem: dict[str, Any]) -> list[str]:
    return [e["field"] for e in problem.get("errors", [])]


async def create(client: Any, **fields: Any) -> dict[str, Any]:
    response = await client.post(CUSTOMERS, json=fields)
    assert response.status_code == 201, response.text
    return response.json()


async def settled_state(system: EmbeddedSystem) -> dict[str, Any]:
    """Everything a request could have changed, once the system has run to quiescence: the
    customers table (tombstones included), the outbox, both sync topics and the fake Stripe."""
    await system.settle()
    tables = system.container.database().tables
    return {
        "customers": dict(tables.customers),
        "outbox": len(tables.outbox),
        "sync.outbound": [m.event_id for m in system.messages("sync.outbound")],
        "sync.inbound": [m.event_id for m in system.messages("sync.inbound")],
        "stripe": copy.deepcopy(system.stripe.customers),
    }


def outbound_count(system: EmbeddedSystem) -> int:
    return len(system.messages("sync.outbound"))


def stripe_twin(system: EmbeddedSystem, external_id: str) -> dict[str, Any]:
    return system.stripe.customers[external_id]


async def asgi_request(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request straight through the ASGI interface, for what httpx will not send: raw header
    bytes outside ASCII, or a body streamed in chunks without a Content-Length."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body
