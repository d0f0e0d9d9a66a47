"""HEAD wherever GET is, and OPTIONS/405 listing exactly the route's methods in ``Allow``."""

from __future__ import annotations

import pytest

from tests.http.helpers import CUSTOMERS, STRIPE_WEBHOOK, assert_problem, create, settled_state, url

ROUTES = {
    CUSTOMERS: {"GET", "HEAD", "POST", "OPTIONS"},
    url(1): {"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"},
    f"{url(1)}/sync-events": {"GET", "HEAD", "OPTIONS"},
    "/api/v1/dead-letters": {"GET", "HEAD", "OPTIONS"},
    "/api/v1/dead-letters/replay": {"POST", "OPTIONS"},
    STRIPE_WEBHOOK: {"POST", "OPTIONS"},
    "/health": {"GET", "HEAD", "OPTIONS"},
}


def allow(response) -> set[str]:
    return {m.strip() for m in response.headers["allow"].split(",")}


@pytest.mark.parametrize("path, methods", ROUTES.items())
async def test_options_lists_every_method_of_the_route(client, path, methods):
    await create(client, name="Ada")

    response = await client.options(path)

    assert response.status_code == 204
    assert allow(response) == methods


@pytest.mark.parametrize("path", [p for p, methods in ROUTES.items() if "GET" in methods])
async def test_head_answers_the_headers_of_get_without_a_body(client, system, path):
    await create(client, name="Ada")
    before = await settled_state(system)

    got, head = await client.get(path), await client.head(path)

    assert head.status_code == got.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "etag"):
        assert head.headers.get(name) == got.headers.get(name), name
    assert await settled_state(system) == before


async def test_head_of_an_unknown_customer_is_404_like_get(client):
    assert (await client.head(url(9))).status_code == (await client.get(url(9))).status_code == 404


@pytest.mark.parametrize(
    "method, path",
    [
        ("DELETE", CUSTOMERS),
        ("POST", url(1)),
        ("PUT", "/health"),
        ("GET", STRIPE_WEBHOOK),
        ("HEAD", STRIPE_WEBHOOK),
        ("HEAD", "/api/v1/dead-letters/replay"),
    ],  # no GET there, so no HEAD either
)
async def test_a_405_lists_the_same_methods_as_options(client, method, path):
    await create(client, name="Ada")

    response = await client.request(method, path)

    assert response.status_code == 405
    if method != "HEAD":
        assert_problem(response, 405)
    assert allow(response) == ROUTES[path]
