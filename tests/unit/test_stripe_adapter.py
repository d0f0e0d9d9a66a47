"""The Stripe adapter over the in-memory directory: calls, translation, and error classes."""

import pytest
import stripe

from adapters.stripe.integration import StripeIntegration
from application.errors import (
    ExternalCustomerMissing,
    IntegrationAuthError,
    PermanentIntegrationError,
    RequestRefused,
    RetryableIntegrationError,
)
from domain.customer import CustomerData
from domain.ownership import OwnershipTag

INSTALLATION = "inst0"


def tag(internal_id: int) -> OwnershipTag:
    return OwnershipTag(internal_id=internal_id, installation=INSTALLATION, create_key=f"key-{internal_id}")


async def test_create_tags_our_id_and_omits_unset_fields(stripe_integration, fake_stripe):
    created = await stripe_integration.create_customer(CustomerData("Ada", None), tag=tag(42), idempotency_key="k1")
    assert created.external_id.startswith("cus_") and created.internal_id == 42
    stored = fake_stripe.customers[created.external_id]
    assert (stored["name"], stored["email"], stored["metadata"]) == (
        "Ada",
        None,
        {"internal_id": "42", "custsync_installation": INSTALLATION, "custsync_create": "key-42"},
    )
    assert (created.claim.internal_id, created.claim.installation, created.claim.create_key) == (42, INSTALLATION, "key-42")


async def test_the_same_idempotency_key_never_creates_twice(stripe_integration, fake_stripe):
    first = await stripe_integration.create_customer(CustomerData("Ada"), tag=tag(1), idempotency_key="k1")
    again = await stripe_integration.create_customer(CustomerData("Ada"), tag=tag(1), idempotency_key="k1")
    assert first == again and len(fake_stripe.customers) == 1


async def test_reusing_a_key_with_other_parameters_is_a_permanent_error(stripe_integration):
    await stripe_integration.create_customer(CustomerData("Ada"), tag=tag(1), idempotency_key="k1")
    with pytest.raises(PermanentIntegrationError):
        await stripe_integration.create_customer(CustomerData("Bob"), tag=tag(1), idempotency_key="k1")


async def test_update_sends_none_as_an_unset(stripe_integration, fake_stripe):
    created = await stripe_integration.create_customer(CustomerData("Ada", "ada@example.com"), tag=tag(1), idempotency_key="k")
    updated = await stripe_integration.update_customer(created.external_id, {"email": None})
    assert updated.data == CustomerData("Ada", None)


async def test_missing_customers_are_reported_as_missing(stripe_integration):
    with pytest.raises(ExternalCustomerMissing):
        await stripe_integration.update_customer("cus_nope", {"name": "x"})
    with pytest.raises(ExternalCustomerMissing):
        await stripe_integration.delete_customer("cus_nope")
    with pytest.raises(ExternalCustomerMissing):  # unknown to this account: never read as "deleted"
        await stripe_integration.retrieve_customer("cus_nope")


async def test_a_deleted_customer_is_still_retrievable_as_deleted(stripe_integration):
    created = await stripe_integration.create_customer(CustomerData("Ada"), tag=tag(1), idempotency_key="k")
    await stripe_integration.delete_customer(created.external_id)
    assert (await stripe_integration.retrieve_customer(created.external_id)).deleted


async def test_listing_walks_every_customer_newest_first(stripe_integration):
    for i in range(5):
        await stripe_integration.create_customer(CustomerData(f"C{i}"), tag=tag(i), idempotency_key=f"k{i}")
    names, cursor = [], None
    for _ in range(5):
        page = await stripe_integration.list_customers(limit=2, cursor=cursor)
        names += [c.data.name for c in page.customers]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert names == ["C4", "C3", "C2", "C1", "C0"]


async def test_link_adds_our_id_without_touching_other_metadata(stripe_integration, fake_stripe):
    created = await fake_stripe.create_async(params={"name": "Grace", "metadata": {"crm": "x1"}})
    await stripe_integration.link_customer(created["id"], OwnershipTag(internal_id=9, installation=INSTALLATION))
    assert fake_stripe.customers[created["id"]]["metadata"] == {
        "crm": "x1",
        "internal_id": "9",
        "custsync_installation": INSTALLATION,
    }


async def test_stripe_validation_errors_are_permanent(stripe_integration):
    with pytest.raises(PermanentIntegrationError, match="Invalid email"):
        await stripe_integration.create_customer(CustomerData("Ada", "no-at-sign"), tag=tag(1), idempotency_key="k")


class FailingCustomers:
    """A customers service that fails every call with one SDK error."""

    def __init__(self, error: stripe.StripeError):
        self.error = error

    async def update_async(self, *args, **kwargs):
        raise self.error


@pytest.mark.parametrize(
    ("error", "expected", "retry_after"),
    [
        (stripe.RateLimitError("slow down", http_status=429, headers={"Retry-After": "2"}), RetryableIntegrationError, 2.0),
        (stripe.APIError("boom", http_status=500), RetryableIntegrationError, None),
        (stripe.APIError("bad gateway", http_status=502), RetryableIntegrationError, None),
        (stripe.APIConnectionError("timed out"), RetryableIntegrationError, None),
        (stripe.AuthenticationError("bad key", http_status=401), IntegrationAuthError, None),
        (stripe.PermissionError("no access", http_status=403), IntegrationAuthError, None),
        (stripe.InvalidRequestError("bad param", "email", http_status=400), RequestRefused, None),
        (stripe.IdempotencyError("key reused with other parameters", http_status=400), PermanentIntegrationError, None),
        (stripe.APIError("a concurrent request under the same key", http_status=409), RetryableIntegrationError, None),
        (
            stripe.InvalidRequestError("lock timeout", None, http_status=400, headers={"Stripe-Should-Retry": "true"}),
            RetryableIntegrationError,
            None,
        ),
        (
            stripe.APIError("do not retry", http_status=500, headers={"stripe-should-retry": "false"}),
            PermanentIntegrationError,
            None,
        ),
    ],
)
async def test_sdk_errors_are_classified(error, expected, retry_after):
    integration = StripeIntegration(FailingCustomers(error), ["whsec_x"])
    with pytest.raises(expected) as exc:
        await integration.update_customer("cus_1", {"name": "x"})
    assert type(exc.value) is expected
    assert exc.value.retry_after == retry_after


async def test_the_fake_lists_events_as_stripe_does(fake_stripe, clock):
    first = await fake_stripe.create_async(params={"name": "First"})
    clock.advance(5)
    await fake_stripe.update_async(first["id"], params={"name": "Renamed"})
    second = await fake_stripe.create_async(params={"name": "Second"})
    events = fake_stripe.event_api
    created = await events.list_async(params={"type": "customer.created", "limit": 10})
    assert [e["data"]["object"]["id"] for e in created["data"]] == [second["id"], first["id"]]  # newest first
    as_sent = await events.list_async(params={"types": {"0": "customer.updated"}})  # the SDK's form encoding
    assert [e["type"] for e in as_sent["data"]] == ["customer.updated"]
    since = await events.list_async(params={"type": "customer.created", "created": {"gte": str(int(clock.now().timestamp()))}})
    assert [e["data"]["object"]["id"] for e in since["data"]] == [second["id"]]
    one = await events.list_async(params={"limit": 1})
    assert one["has_more"] and len(one["data"]) == 1


async def test_created_customers_come_from_creation_events_deleted_ones_included(stripe_integration, fake_stripe, clock):
    gone = await fake_stripe.create_async(params={"name": "Gone", "metadata": {"internal_id": "7"}})
    await fake_stripe.delete_async(gone["id"])
    page = await stripe_integration.created_customers(created_since=clock.now())
    assert [(c.external_id, c.internal_id, c.deleted) for c in page.customers] == [(gone["id"], 7, False)]
    assert page.next_cursor is None
