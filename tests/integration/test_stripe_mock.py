"""Every kind of request the Stripe adapter sends, against Stripe's official stripe-mock.

stripe-mock validates each request's parameters against Stripe's OpenAPI spec and answers 400 when
one is unknown or of the wrong type, so a call that succeeds here has a shape Stripe accepts. It is
stateless (fixed fixtures, ids like ``cus_...``): nothing here asserts on state. It does reflect the
valid scalar parameters of a request into that request's response (its README: "if a charge is
created with amount=123, a charge will be returned with amount: 123"), which is what the
``data == ...`` assertions rely on; nested ones such as ``metadata`` are not reflected.

What stripe-mock does not check (seen with v0.203.0): string lengths (``maxLength``) and the range
of ``limit``; the domain rules and the adapter's clamping cover those.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import stripe

from adapters.stripe.integration import StripeIntegration
from adapters.stripe.sdk import stripe_client
from application.ports import Page
from domain.binding import ExternalAccount
from domain.customer import CustomerData
from domain.messages import ExternalCustomer
from domain.ownership import OwnershipTag
from tests.support.stripe_mock import STRIPE_MOCK_KEY, close_service

pytestmark = pytest.mark.integration

INSTALLATION = "0123456789abcdef0123456789abcdef"


@pytest.fixture
async def customers_service(stripe_mock: str) -> AsyncIterator[object]:
    """The SDK's customers service, configured exactly as the worker configures it."""
    service = stripe_client(STRIPE_MOCK_KEY, api_base=stripe_mock).v1.customers
    yield service
    await close_service(service)


@pytest.fixture
async def accounts_service(stripe_mock: str) -> AsyncIterator[object]:
    service = stripe_client(STRIPE_MOCK_KEY, api_base=stripe_mock).v1.accounts
    yield service
    await close_service(service)


@pytest.fixture
async def events_service(stripe_mock: str) -> AsyncIterator[object]:
    service = stripe_client(STRIPE_MOCK_KEY, api_base=stripe_mock).v1.events
    yield service
    await close_service(service)


@pytest.fixture
async def raw_client(stripe_mock: str) -> AsyncIterator[object]:
    """The client itself, for the full list's raw requests (as the container wires it)."""
    client = stripe_client(STRIPE_MOCK_KEY, api_base=stripe_mock)
    yield client
    await close_service(client)


@pytest.fixture
def adapter(customers_service, accounts_service, events_service, raw_client) -> StripeIntegration:
    return StripeIntegration(
        customers_service,
        webhook_secrets=["whsec_x"],
        accounts=accounts_service,
        events=events_service,
        raw=raw_client,
    )


def assert_customer(customer: object) -> ExternalCustomer:
    assert isinstance(customer, ExternalCustomer)
    assert customer.external_id.startswith("cus_")
    assert isinstance(customer.data, CustomerData)
    return customer


async def test_account(adapter: StripeIntegration):
    account = await adapter.account()
    assert isinstance(account, ExternalAccount)
    assert account.account_id.startswith("acct_")


@pytest.mark.parametrize(
    "tag",
    [
        OwnershipTag(internal_id=42, installation=INSTALLATION, create_key=f"custsync-{INSTALLATION}-create-1"),
        OwnershipTag(internal_id=42, installation=INSTALLATION),
    ],
    ids=["with-create-key", "without-create-key"],
)
async def test_create_with_all_fields_an_idempotency_key_and_our_tag(adapter: StripeIntegration, tag):
    data = CustomerData(name="Ada Lovelace", email="ada@example.com")
    customer = assert_customer(await adapter.create_customer(data, tag=tag, idempotency_key=f"custsync-{INSTALLATION}-create-1"))
    assert customer.data == data  # reflected
    assert not customer.deleted


async def test_create_with_no_optional_field(adapter: StripeIntegration):
    tag = OwnershipTag(internal_id=43, installation=INSTALLATION)
    customer = assert_customer(await adapter.create_customer(CustomerData(), tag=tag, idempotency_key="custsync-x-create-2"))
    assert customer.data == CustomerData()


@pytest.mark.parametrize(
    "changes",
    [{"name": "Grace Hopper", "email": None}, {"name": None, "email": "grace@example.com"}, {"email": "grace@example.com"}],
    ids=["set-name-clear-email", "clear-name-set-email", "one-field"],
)
@pytest.mark.parametrize("idempotency_key", [None, f"custsync-{INSTALLATION}-update-1"], ids=["no-key", "key"])
async def test_update_sets_and_clears_fields(adapter: StripeIntegration, changes, idempotency_key):
    customer = assert_customer(await adapter.update_customer("cus_update", changes, idempotency_key=idempotency_key))
    for field, value in changes.items():  # a cleared field is sent as "", reflected, and read back as None
        assert getattr(customer.data, field) == value


@pytest.mark.parametrize("idempotency_key", [None, f"custsync-{INSTALLATION}-link-1"], ids=["no-key", "key"])
async def test_link_tags_the_customer_as_ours(adapter: StripeIntegration, idempotency_key):
    tag = OwnershipTag(internal_id=44, installation=INSTALLATION)
    assert await adapter.link_customer("cus_link", tag, idempotency_key=idempotency_key) is None


async def test_delete(adapter: StripeIntegration):
    assert await adapter.delete_customer("cus_delete") is None


async def test_retrieve(adapter: StripeIntegration):
    assert_customer(await adapter.retrieve_customer("cus_retrieve"))


async def test_list_first_page(adapter: StripeIntegration):
    page = await adapter.list_customers(limit=100)
    assert isinstance(page, Page)
    assert page.customers
    for customer in page.customers:
        assert_customer(customer)
    assert page.next_cursor is None or page.next_cursor.startswith("cus_")


async def test_list_with_a_cursor(adapter: StripeIntegration):
    page = await adapter.list_customers(limit=500, cursor="cus_previous")  # the adapter clamps limit to 100
    assert isinstance(page, Page)
    for customer in page.customers:
        assert_customer(customer)


async def test_list_by_email_and_creation_time(adapter: StripeIntegration):
    page = await adapter.list_customers(
        limit=10, cursor="cus_previous", email="ada@example.com", created_since=datetime(2024, 1, 1, tzinfo=UTC)
    )
    assert isinstance(page, Page)
    for customer in page.customers:
        assert_customer(customer)


async def test_stripe_mock_refuses_a_parameter_stripe_does_not_have(customers_service):
    """The check has teeth: the same SDK service object, one unknown parameter, refused."""
    with pytest.raises(stripe.InvalidRequestError) as refused:
        await customers_service.create_async(params={"nonexistent_param": "x"})
    assert refused.value.http_status == 400
    assert "validation error" in str(refused.value.user_message).lower()


async def test_created_customers_from_the_events_list(adapter: StripeIntegration):
    # GET /v1/events?type=customer.created&created[gte]=...&limit=100 (the create look-up's second list).
    since = datetime(2026, 1, 1, tzinfo=UTC)
    page = await adapter.created_customers(created_since=since)
    assert isinstance(page, Page)
    assert all(isinstance(c, ExternalCustomer) for c in page.customers)
    await adapter.created_customers(created_since=since, cursor="evt_1")  # and with a cursor
