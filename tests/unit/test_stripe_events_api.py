"""``Integration.recent_changes`` on Stripe: ``GET /v1/events`` read into the very changes its
webhooks would have delivered, on the in-memory stand-in and through the SDK over HTTP."""

from datetime import timedelta

import pytest
import stripe

from adapters.stripe.integration import StripeIntegration
from adapters.stripe.sdk import stripe_client
from entrypoints.settings import Settings
from tests.support.stripe_server import StripeServer
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem


async def make_history(fake) -> None:
    """A create, an update (ours: with a key), a deletion: one event of each customer kind."""
    ada = await fake.create_async(params={"name": "Ada", "metadata": {"internal_id": "7"}}, options={"idempotency_key": "k-1"})
    await fake.update_async(ada["id"], params={"email": "ada@example.com"}, options={"idempotency_key": "k-2"})
    await fake.delete_async(ada["id"])


def as_webhooks(integration: StripeIntegration, fake) -> list:
    changes = []
    for event in fake.events:
        payload, header = fake.signed_event(event, WEBHOOK_SECRET)
        changes.append(integration.parse_webhook(payload, {"stripe-signature": header}))
    return changes


async def all_changes(integration: StripeIntegration, since) -> list:
    changes, cursor = [], None
    for _ in range(100):
        page = await integration.recent_changes(since=since, cursor=cursor)
        changes += page.changes
        cursor = page.next_cursor
        if cursor is None:
            return changes
    raise AssertionError("recent_changes never reached its last page")


async def test_a_listed_event_is_the_same_change_its_webhook_would_be(stripe_integration, fake_stripe, clock):
    await make_history(fake_stripe)
    listed = await all_changes(stripe_integration, since=clock.now())
    assert listed == list(reversed(as_webhooks(stripe_integration, fake_stripe)))  # newest first
    assert [c.kind.value for c in listed] == ["deleted", "updated", "created"]
    assert listed[1].request_key == "k-2" and listed[1].changed_fields == frozenset({"email"})


async def test_changes_are_paged_newest_first_and_start_at_since(stripe_integration, fake_stripe, clock):
    for n in range(5):
        await fake_stripe.create_async(params={"name": f"old {n}"})
    clock.advance(60)
    since = clock.now()
    for n in range(150):
        await fake_stripe.create_async(params={"name": f"new {n}"})
    first = await stripe_integration.recent_changes(since=since)
    assert len(first.changes) == 100 and first.next_cursor is not None
    rest = await stripe_integration.recent_changes(since=since, cursor=first.next_cursor)
    assert len(rest.changes) == 50 and rest.next_cursor is None
    names = [c.customer.data.name for c in first.changes + rest.changes]
    assert names == [f"new {n}" for n in reversed(range(150))]


async def test_events_older_than_thirty_days_are_gone_as_in_stripe(stripe_integration, fake_stripe, clock):
    start = clock.now()
    await fake_stripe.create_async(params={"name": "Old"})
    clock.advance(timedelta(days=29).total_seconds())
    await fake_stripe.create_async(params={"name": "Recent"})
    assert len(await all_changes(stripe_integration, since=start)) == 2
    clock.advance(timedelta(days=1, seconds=1).total_seconds())
    assert [c.customer.data.name for c in await all_changes(stripe_integration, since=start)] == ["Recent"]


async def test_unreadable_and_foreign_events_are_left_out(stripe_integration, fake_stripe, clock):
    await fake_stripe.create_async(params={"name": "Ada"})
    good = fake_stripe.events[-1]
    fake_stripe.events.append({**good, "id": "evt_bad", "data": {"object": {**good["data"]["object"], "name": 42}}})
    fake_stripe.events.append({**good, "id": "", "data": {"object": good["data"]["object"]}})  # not an event at all
    listed = await all_changes(stripe_integration, since=clock.now())
    assert [c.event_id for c in listed] == [good["id"]]


async def test_through_the_sdk_over_http_events_read_as_their_webhooks_and_the_types_filter_arrives():
    with StripeServer() as server:
        fake = server.stripe
        await make_history(fake)
        fake.events.append({**fake.events[0], "id": "evt_invoice", "type": "invoice.paid"})
        client = stripe_client("sk_test_events", api_base=server.url)
        integration = StripeIntegration(client.v1.customers, [WEBHOOK_SECRET], events=client.v1.events)

        listed = await all_changes(integration, since=fake._clock.now() - timedelta(minutes=1))
        assert listed == list(reversed(as_webhooks(integration, fake)[:3]))
        assert [path for method, path, _ in server.requests] == ["/v1/events"]

        # The SDK sends a list as types[0]=...&types[1]=...: the server must read it as one.
        only = await client.v1.events.list_async(params={"types": ["customer.created", "customer.deleted"]})
        assert sorted(e["type"] for e in only["data"]) == ["customer.created", "customer.deleted"]
        assert isinstance(only["data"][0], stripe.StripeObject)  # what to_dict() turns into plain data


async def test_every_events_call_takes_a_token_of_the_stripe_budget(clock):
    with StripeServer() as server:
        settings = Settings(stripe_secret_key="sk_test_budget", stripe_api_base=server.url, stripe_max_rps=4)
        system = EmbeddedSystem(settings, clock=clock)
        integration = system.container.integrations()["stripe"]
        await integration.recent_changes(since=clock.now())
        await integration.recent_changes(since=clock.now())
        assert clock.slept == [pytest.approx(0.25)]  # the second waited for its token (4 per second)
