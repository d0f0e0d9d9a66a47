"""Stripe's official stripe-mock (started by ``scripts/services.sh up``, see scripts/stripe-mock.sh).

stripe-mock checks every request's parameters against Stripe's OpenAPI spec and answers 400 naming
the parameter it refuses; otherwise it answers fixed, schema-valid fixtures (stateless: ids like
``cus_...`` whatever was sent). So a call that succeeds there has a request shape Stripe accepts.
"""

from __future__ import annotations

import os

import httpx

STRIPE_MOCK_DEFAULT_URL = "http://127.0.0.1:29112"
STRIPE_MOCK_KEY = "sk_test_123"  # any sk_test_ key will do; stripe-mock only checks the form


def stripe_mock_url() -> str:
    """STRIPE_MOCK_URL (as printed by ``scripts/services.sh env``), else the local default."""
    return os.environ.get("STRIPE_MOCK_URL", STRIPE_MOCK_DEFAULT_URL).rstrip("/")


def check_stripe_mock(url: str, *, timeout: float = 5.0) -> None:
    """Raise (with the reason) unless a stripe-mock answers an authenticated API call at ``url``.

    The ``Stripe-Mock-Version`` header tells stripe-mock from another Stripe-compatible server
    (such as tests/support/stripe_server.py), which would not validate anything.
    """
    response = httpx.get(f"{url}/v1/customers", params={"limit": 1}, auth=(STRIPE_MOCK_KEY, ""), timeout=timeout)
    if response.status_code != 200:
        raise RuntimeError(f"GET /v1/customers answered {response.status_code}: {response.text[:200]}")
    if "stripe-mock-version" not in response.headers:
        raise RuntimeError("the server answers but is not stripe-mock (no Stripe-Mock-Version header)")


async def close_service(service) -> None:
    """Close the HTTPX client behind an SDK service such as ``stripe_client(...).v1.customers`` (one per
    test: one event loop per test). The SDK offers no public way to reach it from a service object."""
    await service._requestor._get_http_client().close_async()
