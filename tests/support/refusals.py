"""A Stripe that refuses calls for good, the way it refuses data it finds invalid, until "the fix"."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import stripe

from adapters.memory.stripe import InMemoryStripe

REFUSAL = "Invalid email address: ada@example.com"


@contextmanager
def stripe_refusing(fake: InMemoryStripe, method: str = "create_async", message: str = REFUSAL) -> Iterator[None]:
    """Every ``method`` call (``create_async``, ``retrieve_async``...) is answered 400 inside the block."""

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise stripe.InvalidRequestError(message, "email", code="email_invalid", http_status=400)

    setattr(fake, method, refuse)
    try:
        yield
    finally:
        delattr(fake, method)  # the class's own method answers again
