"""The official SDK's async services, configured for the worker."""

from __future__ import annotations

import stripe


def stripe_client(secret_key: str, *, api_base: str = "", timeout: float = 20.0) -> stripe.StripeClient:
    """``StripeClient`` on HTTPX (async, interceptable by respx).

    The SDK's own retries are off: the worker retries with backoff and the rate limiter, so that
    every attempt is paced and counted against STRIPE_MAX_RPS.
    """
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": api_base.rstrip("/")} if api_base else None,
        http_client=stripe.HTTPXClient(timeout=timeout),
        max_network_retries=0,
    )
