"""Did a create of ours land? Asked when its answer is lost for good -- a failure replayed for our
idempotency key, a key that may have expired (Stripe keeps them 24 hours) -- of the list of
customers (strongly consistent, unlike a search index), then, since that list leaves out deleted
customers, of the system's record of creations (Stripe: ``customer.created`` events): a customer
our create made and a person deleted meanwhile was made all the same."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from application.errors import PermanentIntegrationError
from application.ports import Integration, Page
from domain.mapping import CreateIntent
from domain.messages import ExternalCustomer
from domain.ownership import proves_own_create

# Our clock and the external system's may disagree a little.
CLOCK_SKEW = timedelta(minutes=15)
MAX_PAGES = 50  # 5,000 customers created since the intent, at most, before we give up guessing


async def find_own_create(integration: Integration, intent: CreateIntent, installation: str) -> ExternalCustomer | None:
    """The customer our create ``intent`` made, as it is now (``deleted`` if a person deleted it
    since), proven by its tags (``domain.ownership``); ``None`` if both lists prove there is none.
    Never guesses: lists too long to read raise."""
    since = intent.created_at - CLOCK_SKEW
    # Never filtered by the intent's fields: a person may have changed them since.
    found = await _first_proven(
        lambda cursor: integration.list_customers(limit=100, cursor=cursor, created_since=since), intent, installation
    )
    if found is not None:
        return found
    made = await _first_proven(
        lambda cursor: integration.created_customers(created_since=since, cursor=cursor), intent, installation
    )
    return None if made is None else await integration.retrieve_customer(made.external_id)


async def _first_proven(
    page_of: Callable[[str | None], Awaitable[Page]], intent: CreateIntent, installation: str
) -> ExternalCustomer | None:
    cursor = None
    for _ in range(MAX_PAGES):
        page = await page_of(cursor)
        for customer in page.customers:
            if proves_own_create(customer.claim, installation, intent):
                return customer
        if page.next_cursor is None:
            return None
        cursor = page.next_cursor
    raise PermanentIntegrationError(
        f"cannot tell whether the create of customer {intent.customer_id} landed: more than {MAX_PAGES * 100} "
        f"customers created since {intent.created_at:%Y-%m-%d %H:%M} (UTC); link or replay it by hand"
    )
