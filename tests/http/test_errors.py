"""Errors outside any one route: unknown routes and methods, unexpected failures, raw headers.
Whatever goes wrong, the answer is problem+json and never shows the server's internals."""

from __future__ import annotations

import json
import logging

import pytest
from dependency_injector import providers

from tests.http.helpers import CUSTOMERS, STRIPE_WEBHOOK, asgi_request, assert_problem, create, settled_state, url

SECRET_MESSAGE = "password=hunter2 at db.internal:5432"


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("DELETE", CUSTOMERS, {"GET", "POST"}),
        ("PUT", CUSTOMERS, {"GET", "POST"}),
        ("POST", url(1), {"GET", "PUT", "PATCH", "DELETE"}),
        ("DELETE", f"{url(1)}/sync-events", {"GET"}),
        ("GET", STRIPE_WEBHOOK, {"POST"}),
        ("POST", "/health", {"GET"}),
    ],
)
async def test_a_method_the_route_does_not_have_is_405_with_allow(client, system, method, path, allowed):
    await create(client, name="Ada")
    before = await settled_state(system)

    response = await client.request(method, path)

    assert_problem(response, 405)
    assert allowed <= {m.strip() for m in response.headers["allow"].split(",")}
    assert await settled_state(system) == before


@pytest.mark.parametrize(
    "path", ["/nope", "/api/v1", "/api/v2/customers", f"{url(1)}/orders", "/api/v1/customers/1/sync-events/x"]
)
async def test_an_unknown_route_is_a_404_problem(client, path):
    await create(client, name="Ada")

    assert_problem(await client.get(path), 404)


def failing(exc: Exception):
    def boom(*_args, **_kwargs):
        raise exc

    return boom


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", CUSTOMERS, None),
        ("GET", url(1), None),
        ("POST", CUSTOMERS, {"name": "Grace"}),
        ("PATCH", url(1), {"name": "Grace"}),
        ("DELETE", url(1), None),
        ("GET", f"{url(1)}/sync-events", None),
    ],
)
async def test_an_unexpected_failure_is_a_500_problem_without_traceback_or_message(client, system, caplog, method, path, body):
    await create(client, name="Ada")
    system.container.uow_factory.override(providers.Object(failing(RuntimeError(SECRET_MESSAGE))))
    try:
        with caplog.at_level(logging.ERROR, logger="entrypoints.http.problems"):
            response = await client.request(method, path, json=body)
    finally:
        system.container.uow_factory.reset_override()

    problem = assert_problem(response, 500)
    assert problem["title"] == "Internal server error"
    assert SECRET_MESSAGE not in response.text and "RuntimeError" not in response.text
    assert any(SECRET_MESSAGE in r.getMessage() or (r.exc_info and SECRET_MESSAGE in str(r.exc_info[1])) for r in caplog.records)


async def test_a_failure_while_publishing_a_webhook_is_a_500_problem_without_traceback(client, system):
    class BrokenPublisher:
        async def publish(self, envelopes):
            raise ConnectionError(SECRET_MESSAGE)

    event = {
        "id": "evt_1",
        "object": "event",
        "type": "customer.created",
        "created": 1767225600,
        "data": {"object": {"id": "cus_1", "object": "customer", "name": "Grace", "email": None, "metadata": {}}},
    }
    payload, signature = system.stripe.signed_event(event, system.secret)
    system.container.publisher.override(providers.Object(BrokenPublisher()))
    try:
        response = await client.post(STRIPE_WEBHOOK, content=payload, headers={"stripe-signature": signature})
    finally:
        system.container.publisher.reset_override()

    assert_problem(response, 500)
    assert SECRET_MESSAGE not in response.text


async def test_the_app_recovers_after_an_unexpected_failure(client, system):
    await create(client, name="Ada")
    system.container.uow_factory.override(providers.Object(failing(RuntimeError("down"))))
    assert_problem(await client.get(url(1)), 500)
    system.container.uow_factory.reset_override()

    assert (await client.get(url(1))).status_code == 200


async def test_an_if_match_with_a_non_ascii_digit_byte_is_412_not_500(client, system):
    """A raw 0xB2 byte decodes (latin-1) to "²", for which str.isdigit() is true but int() fails.
    It is a well-formed entity tag (obs-text), one this API never issued: it matches nothing."""
    await create(client, name="Ada")
    before = await settled_state(system)
    headers = [(b"content-type", b"application/json"), (b"if-match", b'"\xb2"')]

    status, response_headers, body = await asgi_request(client.app, "PATCH", url(1), headers, [b'{"name": "Grace"}'])

    assert status == 412, body
    assert response_headers[b"content-type"] == b"application/problem+json"
    assert json.loads(body)["current_version"] == 1
    assert await settled_state(system) == before


async def test_problem_bodies_are_rfc_9457_shaped(client):
    body = assert_problem(await client.get(url(404)), 404)

    assert body["type"] == "about:blank"
    assert set(body) <= {"type", "title", "status", "detail", "errors", "current_version"}
