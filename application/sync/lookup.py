"""Did a create of ours land? Asked of the external system's list (strongly consistent, unlike a
search index) when its answer is lost for good: a failure replayed for our idempotency key, or a
key that may have expired (Stripe keeps them 24 hours)."""

from __future__ import annotations

from datetime import timedelta

from application.errors import PermanentIntegrationError
from application.ports import Integration
from domain.mapping import CreateIntent
from domain.messages import ExternalCustomer
from domain.ownership import proves_own_create

# Our clock and the external system's may disagree a little.
CLOCK_SKEW = timedelta(minutes=15)
MAX_PAGES = 50  # 5,000 customers created since the intent, at most, before we give up guessing


async def find_own_create(integration: Integration, intent: CreateIntent, installation: str) -> ExternalCustomer | None:
    """The customer our create ``intent`` made, proven by its tags (``domain.ownership``), or
    ``None`` if the list proves there is none. Never guesses: a list too long to read raises."""
    cursor = None
    for _ in range(MAX_PAGES):
        page = await integration.list_customers(
            limit=100, cursor=cursor, email=intent.data.email, created_since=intent.created_at - CLOCK_SKEW
        )
        for customer in page.customers:
            if not customer.deleted and proves_own_create(customer.claim, installation, intent):
                return customer
        if page.next_cursor is None:
            return None
        cursor = page.next_cursor
    raise PermanentIntegrationError(
        f"cannot tell whether the create of customer {intent.customer_id} landed: more than {MAX_PAGES * 100} "
        f"customers created since {intent.created_at:%Y-%m-%d %H:%M} (UTC); link or replay it by hand"
    )
