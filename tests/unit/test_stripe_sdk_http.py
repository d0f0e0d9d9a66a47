"""The Stripe adapter on the official SDK, checked at the HTTP level with respx."""

import itertools
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from application.commands import CreateCustomer, DeleteCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.delete import delete_customer
from application.customers.update import patch_customer
from domain.messages import OUTBOUND_TOPIC, dead_letter_topic
from domain.sync import Direction, SyncStatus
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem

API = "https://api.stripe.com/v1/customers"


def customer_json(cid="cus_1", name="Ada", email="ada@example.com", internal_id="1"):
    return {"id": cid, "object": "customer", "name": name, "email": email, "metadata": {"internal_id": internal_id}}


def error(status, message, code=None, headers=None, kind="invalid_request_error"):
    return httpx.Response(status, json={"error": {"type": kind, "message": message, "code": code}}, headers=headers)


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


@pytest.fixture
def stripe_http():
    with respx.mock(assert_all_called=False) as mock:
        # The worker checks the key's account before creates (application.accounts.AccountGuard).
        mock.get("https://api.stripe.com/v1/account").mock(
            return_value=httpx.Response(200, json={"id": "acct_1", "object": "account"})
        )
        yield mock


@pytest.fixture
def system(clock, stripe_http):
    settings = Settings(stripe_secret_key="sk_test_123", stripe_webhook_secret=WEBHOOK_SECRET, worker_max_attempts=4)
    return EmbeddedSystem(settings, clock=clock)


async def create(system):
    return await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)


async def outbound_records(system, customer_id):
    return [r for r in await system.history(customer_id) if r.direction is Direction.OUTBOUND]


async def test_a_create_posts_the_fields_our_id_and_an_idempotency_key(system, stripe_http):
    route = stripe_http.post(API).mock(return_value=httpx.Response(200, json=customer_json()))
    customer = await create(system)
    await system.settle()
    request = route.calls.last.request
    installation = await system.installation()
    key = request.headers["idempotency-key"]
    assert key.startswith(f"custsync-{installation}-create-")
    assert form(request) == {
        "name": "Ada",
        "email": "ada@example.com",
        "metadata[internal_id]": str(customer.id),
        "metadata[custsync_installation]": installation,
        "metadata[custsync_create]": key,
    }
    assert request.headers["authorization"] == "Bearer sk_test_123"
    assert (await system.mapping(customer.id)).external_id == "cus_1"


async def test_a_429_is_retried_with_the_same_idempotency_key(system, stripe_http):
    route = stripe_http.post(API).mock(
        side_effect=[
            error(429, "Too many requests", "rate_limit", headers={"Retry-After": "2"}),
            httpx.Response(200, json=customer_json()),
        ]
    )
    customer = await create(system)
    await system.settle()
    keys = [call.request.headers["idempotency-key"] for call in route.calls]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert 2.0 in system.clock.slept  # Retry-After honoured
    [record] = await outbound_records(system, customer.id)
    assert (record.status, record.attempts) == (SyncStatus.SUCCEEDED, 2)


async def test_a_500_storm_is_waited_out_and_never_dead_lettered(system, stripe_http):
    storm = [error(500, "Internal error", kind="api_error")] * 30
    route = stripe_http.post(API).mock(side_effect=[*storm, httpx.Response(200, json=customer_json())])
    customer = await create(system)
    await system.settle()
    assert route.call_count == 31  # worker_max_attempts (4) bounds only unexpected errors
    assert (await system.mapping(customer.id)).external_id == "cus_1"
    [record] = await outbound_records(system, customer.id)
    assert (record.status, record.attempts) == (SyncStatus.SUCCEEDED, 31)
    assert system.messages(dead_letter_topic(OUTBOUND_TOPIC)) == []


async def test_a_timeout_is_retryable(system, stripe_http):
    route = stripe_http.post(API).mock(side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=customer_json())])
    customer = await create(system)
    await system.settle()
    assert route.call_count == 2 and (await system.mapping(customer.id)) is not None


async def test_stripe_refusing_the_data_is_dead_lettered_at_once_with_its_message(system, stripe_http):
    route = stripe_http.post(API).mock(return_value=error(400, "Invalid email address: ada@example.com", "email_invalid"))
    customer = await create(system)
    await system.settle()
    assert route.call_count == 1
    [record] = await outbound_records(system, customer.id)
    assert record.status is SyncStatus.DEAD and "Invalid email address" in record.last_error


async def linked(system, stripe_http):
    stripe_http.post(API).mock(return_value=httpx.Response(200, json=customer_json()))
    # Under the default latest_wins policy an update first reads Stripe's current state.
    stripe_http.get(f"{API}/cus_1").mock(return_value=httpx.Response(200, json=customer_json()))
    customer = await create(system)
    await system.settle()
    return customer


async def test_an_update_sends_only_the_changed_field(system, stripe_http):
    customer = await linked(system, stripe_http)
    route = stripe_http.post(f"{API}/cus_1").mock(return_value=httpx.Response(200, json=customer_json(email=None)))
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"email": None}), system.uow_factory(), system.clock)
    await system.settle()
    assert form(route.calls.last.request) == {"email": ""}  # "" unsets in Stripe


NO_SUCH_CUSTOMER = ("No such customer: 'cus_1'", "resource_missing")
DELETED = {"id": "cus_1", "object": "customer", "deleted": True}


async def test_a_404_on_a_mapped_customer_changes_nothing_here_and_breaks_the_link(system, stripe_http):
    # Another account's key, or test vs live: Stripe answers 404 for a customer it never had.
    customer = await linked(system, stripe_http)
    stripe_http.get(f"{API}/cus_1").mock(return_value=error(404, *NO_SUCH_CUSTOMER))
    update = stripe_http.post(f"{API}/cus_1").mock(return_value=error(404, *NO_SUCH_CUSTOMER))
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "B"}), system.uow_factory(), system.clock)
    await system.settle()
    after = await system.customer(customer.id)
    assert not after.deleted and after.data.name == "B"  # nothing wiped
    assert update.call_count == 0  # nothing written to an account that does not know it
    mapping = await system.mapping(customer.id)
    assert mapping.broken and "404" in mapping.broken
    [record] = [r for r in await outbound_records(system, customer.id) if r.status is SyncStatus.DEAD]
    assert "marked broken" in record.last_error
    assert len(system.messages(dead_letter_topic(OUTBOUND_TOPIC))) == 1  # waits for an operator


async def test_a_404_on_update_is_a_deletion_only_when_a_retrieve_says_deleted(system, stripe_http):
    customer = await linked(system, stripe_http)
    retrieve = stripe_http.get(f"{API}/cus_1").mock(
        side_effect=[
            httpx.Response(200, json=customer_json()),
            httpx.Response(200, json=DELETED),
        ]
    )
    stripe_http.post(f"{API}/cus_1").mock(return_value=error(404, *NO_SUCH_CUSTOMER))  # deleted meanwhile
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "B"}), system.uow_factory(), system.clock)
    await system.settle()
    assert retrieve.call_count == 2  # the read before the write, then the one that proves the deletion
    assert (await system.customer(customer.id)).deleted


async def test_a_404_on_delete_means_already_deleted_when_stripe_says_so(system, stripe_http):
    customer = await linked(system, stripe_http)
    route = stripe_http.delete(f"{API}/cus_1").mock(return_value=error(404, *NO_SUCH_CUSTOMER))
    retrieve = stripe_http.get(f"{API}/cus_1").mock(return_value=httpx.Response(200, json=DELETED))
    await delete_customer(DeleteCustomer(customer_id=customer.id), system.uow_factory(), system.clock)
    await system.settle()
    assert route.call_count == 1 and retrieve.call_count == 1  # the 404 was checked, not believed
    delete_record = (await outbound_records(system, customer.id))[0]
    assert (delete_record.status, delete_record.note) == (SyncStatus.SUCCEEDED, "already gone")


async def test_a_404_on_delete_of_a_customer_stripe_never_had_breaks_the_link(system, stripe_http):
    customer = await linked(system, stripe_http)
    stripe_http.delete(f"{API}/cus_1").mock(return_value=error(404, *NO_SUCH_CUSTOMER))
    stripe_http.get(f"{API}/cus_1").mock(return_value=error(404, *NO_SUCH_CUSTOMER))
    await delete_customer(DeleteCustomer(customer_id=customer.id), system.uow_factory(), system.clock)
    await system.settle()
    assert (await system.mapping(customer.id)).broken
    assert (await outbound_records(system, customer.id))[0].status is SyncStatus.DEAD


async def test_refused_credentials_pause_the_worker_instead_of_dead_lettering(system, stripe_http):
    route = stripe_http.post(API).mock(
        side_effect=[
            error(401, "Invalid API Key provided", kind="invalid_request_error"),
            httpx.Response(200, json=customer_json()),
        ]
    )
    customer = await create(system)
    await system.settle()
    assert route.call_count == 2 and 60.0 in system.clock.slept
    assert system.messages(dead_letter_topic(OUTBOUND_TOPIC)) == []
    assert (await system.mapping(customer.id)) is not None


async def test_retries_count_against_the_request_budget(system, stripe_http):
    sent_at = []

    def storm(request):
        sent_at.append(system.clock.now().timestamp())
        if len(sent_at) < 4:
            return error(500, "Internal error", kind="api_error")
        return httpx.Response(200, json=customer_json())

    stripe_http.post(API).mock(side_effect=storm)
    await create(system)
    await system.settle()
    # Backoff alone would retry after ~10 ms; the 25 requests/s budget spaces every attempt >= 40 ms.
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert len(sent_at) == 4 and min(gaps) >= 0.04 - 1e-6


async def test_a_full_list_reads_pages_as_plain_json_with_the_query_stripe_expects(system, stripe_http):
    """Reconcile's list goes through StripeClient.raw_request_async (no StripeObjects per page): the
    same GET, auth and paging; a record we cannot read is skipped, not fatal."""
    pages = [
        {
            "object": "list",
            "data": [
                customer_json("cus_1"),
                customer_json("cus_2", email=None, internal_id="2"),
                {"id": "cus_bad", "object": "customer", "metadata": "not an object"},
            ],
            "has_more": True,
        },
        {"object": "list", "data": [customer_json("cus_3", internal_id="3")], "has_more": False},
    ]
    route = stripe_http.get(API).mock(side_effect=[httpx.Response(200, json=page) for page in pages])
    integration = system.container.stripe()
    first = await integration.list_customers(limit=100)
    assert [c.external_id for c in first.customers] == ["cus_1", "cus_2"] and first.next_cursor == "cus_bad"
    assert first.customers[1].data.email is None and first.customers[0].data.name == "Ada"
    second = await integration.list_customers(limit=100, cursor=first.next_cursor)
    assert [c.external_id for c in second.customers] == ["cus_3"] and second.next_cursor is None
    sent = [dict(parse_qsl(call.request.url.query.decode())) for call in route.calls]
    assert sent == [{"limit": "100"}, {"limit": "100", "starting_after": "cus_bad"}]
    assert all(call.request.headers["authorization"] == "Bearer sk_test_123" for call in route.calls)


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (401, True), (400, False)])
async def test_a_full_list_page_that_fails_is_classified_as_every_other_call(system, stripe_http, status, retryable):
    from application.errors import IntegrationError

    stripe_http.get(API).mock(return_value=error(status, "no"))
    with pytest.raises(IntegrationError) as raised:
        await system.container.stripe().list_customers(limit=100)
    assert raised.value.retryable is retryable


async def test_a_catch_up_poll_logs_at_debug_and_every_other_call_at_info(system, stripe_http, caplog):
    """An idle account adds no INFO line per poll; a listing that guards a create (the look-up
    after a lost answer) or a reconcile page stays at INFO, with its Request-Id."""
    import logging
    from datetime import UTC, datetime

    stripe_http.get("https://api.stripe.com/v1/events").mock(
        return_value=httpx.Response(
            200, json={"object": "list", "data": [], "has_more": False}, headers={"Request-Id": "req_poll"}
        )
    )
    stripe_http.get(API).mock(
        return_value=httpx.Response(
            200, json={"object": "list", "data": [], "has_more": False}, headers={"Request-Id": "req_list"}
        )
    )
    stripe = system.container.integrations()["stripe"]
    with caplog.at_level(logging.DEBUG, logger="adapters.stripe.limiter"):
        await stripe.recent_changes(since=datetime(2026, 1, 1, tzinfo=UTC))
        await stripe.list_customers(limit=10, created_since=datetime(2026, 1, 1, tzinfo=UTC))
    lines = [(r.levelno, r.getMessage().split(" in ")[0]) for r in caplog.records]
    assert lines == [
        (logging.DEBUG, "stripe events.list -> 200"),
        (logging.INFO, "stripe raw_request -> 200"),
    ]  # the list, as JSON
