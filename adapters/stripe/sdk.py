"""The official SDK's async customers service, configured for the worker."""

from __future__ import annotations

import stripe


def stripe_customers_service(secret_key: str, *, api_base: str = "", timeout: float = 20.0):
    """``StripeClient(...).v1.customers`` on HTTPX (async, interceptable by respx).

    The SDK's own retries are off: the worker retries with backoff and the rate limiter, so that
    every attempt is paced and counted against STRIPE_MAX_RPS.
    """
    client = stripe.StripeClient(
        secret_key,
        base_addresses={"api": api_base.rstrip("/")} if api_base else None,
        http_client=stripe.HTTPXClient(timeout=timeout),
        max_network_retries=0,
    )
    return client.v1.customers
