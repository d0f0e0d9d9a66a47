"""POST /api/v1/webhooks/{system}: verify the signature, publish to sync.inbound, answer at once."""

from __future__ import annotations

import time

import pytest
import stripe
from litestar.testing import AsyncTestClient

from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.http.helpers import CUSTOMERS, STRIPE_WEBHOOK, assert_problem, url
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem, tagged


def customer_event(event_id: str, kind: str, customer: dict, created: int = 1767225600) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": kind,
        "created": created,
        "livemode": False,
        "data": {"object": {"object": "customer", "metadata": {}, **customer}},
    }


def in_stripe(system, customer_id: str, name: str | None, email: str | None) -> dict:
    """A customer that exists on the Stripe side, added without emitting an event: its webhook is
    delivered by the test, through HTTP, and nowhere else."""
    customer = {"id": customer_id, "object": "customer", "created": 1767225600, "name": name, "email": email, "metadata": {}}
    system.stripe.put(customer)
    return customer


async def post_signed(client, system, event: dict, secret: str = WEBHOOK_SECRET, **kwargs):
    payload, signature = system.stripe.signed_event(event, secret, **kwargs)
    return await client.post(STRIPE_WEBHOOK, content=payload, headers={"stripe-signature": signature})


def inbound_ids(system) -> list[str]:
    return [m.event_id for m in system.messages("sync.inbound")]


async def test_a_signed_customer_created_event_is_acknowledged_and_published_on_sync_inbound(client, system):
    event = customer_event("evt_created", "customer.created", in_stripe(system, "cus_grace", "Grace Hopper", "grace@navy.mil"))

    response = await post_signed(client, system, event)

    assert response.status_code == 200
    assert response.json() == {"received": True, "event_id": "evt_created", "ignored": False, "rejected": None}
    [message] = system.messages("sync.inbound")
    assert (message.event_id, message.key) == ("evt_created", "stripe:cus_grace")


async def test_after_settle_a_created_event_adds_the_customer_linked_to_stripe(client, system):
    event = customer_event("evt_created", "customer.created", in_stripe(system, "cus_grace", "Grace Hopper", "grace@navy.mil"))
    await post_signed(client, system, event)

    await system.settle()

    [customer] = (await client.get(CUSTOMERS)).json()["data"]
    assert (customer["name"], customer["email"]) == ("Grace Hopper", "grace@navy.mil")
    mapping = (await client.get(url(customer["id"]))).json()["mappings"][0]
    assert (mapping["external_id"], mapping["sync_status"]) == ("cus_grace", "synced")
    assert tagged(system.stripe.customers["cus_grace"]["metadata"]) == await system.tags(customer["id"])


async def test_after_settle_an_updated_event_changes_the_linked_customer(client, system, synced_customer):
    external_id = (await client.get(url(1))).json()["mappings"][0]["external_id"]
    system.stripe.customers[external_id]["name"] = "Ada King"  # changed in Stripe; this is its event
    twin = dict(system.stripe.customers[external_id])
    created = int(system.clock.now().timestamp()) + 60

    response = await post_signed(client, system, customer_event("evt_updated", "customer.updated", twin, created))
    await system.settle()

    assert response.status_code == 200
    assert (await client.get(url(1))).json()["name"] == "Ada King"


async def test_an_event_whose_snapshot_is_stale_applies_stripes_current_state(client, system, synced_customer):
    external_id = (await client.get(url(1))).json()["mappings"][0]["external_id"]
    stale = dict(system.stripe.customers[external_id], name="An older name")

    await post_signed(client, system, customer_event("evt_stale", "customer.updated", stale))
    await system.settle()

    assert (await client.get(url(1))).json()["name"] == system.stripe.customers[external_id]["name"] == "Ada Lovelace"


async def test_after_settle_a_deleted_event_deletes_the_linked_customer(client, system, synced_customer):
    external_id = (await client.get(url(1))).json()["mappings"][0]["external_id"]
    twin = dict(system.stripe.customers[external_id], deleted=True)

    response = await post_signed(client, system, customer_event("evt_deleted", "customer.deleted", twin))
    await system.settle()

    assert response.status_code == 200
    assert_problem(await client.get(url(1)), 404)


async def test_a_redelivered_event_is_applied_once(client, system):
    event = customer_event("evt_twice", "customer.created", in_stripe(system, "cus_twice", "Grace", None))

    first = await post_signed(client, system, event)
    second = await post_signed(client, system, event)
    await system.settle()

    assert (first.status_code, second.status_code) == (200, 200)
    assert len((await client.get(CUSTOMERS)).json()["data"]) == 1


@pytest.mark.parametrize("kind", ["invoice.paid", "customer.subscription.created", "charge.succeeded"])
async def test_an_unhandled_event_type_is_200_ignored_and_publishes_nothing(client, system, kind):
    event = {
        "id": "evt_other",
        "object": "event",
        "type": kind,
        "created": 1767225600,
        "data": {"object": {"id": "in_1", "object": "invoice"}},
    }

    response = await post_signed(client, system, event)
    await system.settle()

    assert response.status_code == 200
    assert response.json() == {"received": True, "event_id": None, "ignored": True, "rejected": None}
    assert inbound_ids(system) == []
    assert (await client.get(CUSTOMERS)).json()["data"] == []


async def test_a_missing_signature_is_400_and_publishes_nothing(client, system):
    payload, _ = system.stripe.signed_event(
        customer_event("evt_1", "customer.created", {"id": "cus_1", "name": "G"}), WEBHOOK_SECRET
    )

    response = await client.post(STRIPE_WEBHOOK, content=payload, headers={"content-type": "application/json"})

    assert "Stripe-Signature" in assert_problem(response, 400)["detail"]
    assert inbound_ids(system) == []


async def test_a_signature_made_with_another_secret_is_400_and_publishes_nothing(client, system):
    event = customer_event("evt_1", "customer.created", {"id": "cus_1", "name": "Mallory"})

    assert_problem(await post_signed(client, system, event, secret="whsec_someone_else"), 400)

    assert inbound_ids(system) == []


async def test_a_body_changed_after_signing_is_400_and_publishes_nothing(client, system):
    payload, signature = system.stripe.signed_event(
        customer_event("evt_1", "customer.created", {"id": "cus_1", "name": "Grace"}), WEBHOOK_SECRET
    )
    tampered = payload.replace(b"Grace", b"Evil!")
    assert tampered != payload

    response = await client.post(STRIPE_WEBHOOK, content=tampered, headers={"stripe-signature": signature})

    assert_problem(response, 400)
    assert inbound_ids(system) == []


async def test_a_signature_ten_minutes_old_is_400_and_publishes_nothing(client, system):
    event = customer_event("evt_1", "customer.created", {"id": "cus_1", "name": "Grace"})

    response = await post_signed(client, system, event, timestamp=int(time.time()) - 600)

    assert "tolerance" in assert_problem(response, 400)["detail"].lower()
    assert inbound_ids(system) == []


@pytest.mark.parametrize("header", ["garbage", "t=1,v1=deadbeef", "v1=", "t=notanumber,v1=abc"])
async def test_a_malformed_signature_header_is_400_and_publishes_nothing(client, system, header):
    payload, _ = system.stripe.signed_event(customer_event("evt_1", "customer.created", {"id": "cus_1"}), WEBHOOK_SECRET)

    assert_problem(await client.post(STRIPE_WEBHOOK, content=payload, headers={"stripe-signature": header}), 400)

    assert inbound_ids(system) == []


@pytest.mark.parametrize(
    "payload",
    ["not json", "[]", '{"id": "evt_1"}', '{"id": "evt_1", "type": "customer.created", "created": "today", "data": {}}'],
)
async def test_a_correctly_signed_body_that_is_not_a_stripe_event_is_400(client, system, payload):
    signature = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)

    response = await client.post(STRIPE_WEBHOOK, content=payload, headers={"stripe-signature": signature})

    assert_problem(response, 400)
    assert inbound_ids(system) == []


async def test_an_unknown_system_is_404_and_publishes_nothing(client, system):
    event = customer_event("evt_1", "customer.created", {"id": "cus_1", "name": "Grace"})
    payload, signature = system.stripe.signed_event(event, WEBHOOK_SECRET)

    response = await client.post("/api/v1/webhooks/salesforce", content=payload, headers={"stripe-signature": signature})

    assert "salesforce" in assert_problem(response, 404)["detail"]
    assert inbound_ids(system) == []


async def test_a_webhook_body_over_512_kib_is_413(client, system):
    payload = b'{"pad": "' + b"x" * (512 * 1024) + b'"}'

    response = await client.post(STRIPE_WEBHOOK, content=payload, headers={"stripe-signature": "t=1,v1=abc"})

    assert_problem(response, 413)
    assert inbound_ids(system) == []


async def test_a_webhook_over_the_api_body_limit_but_under_its_own_is_accepted(client, system):
    customer = in_stripe(system, "cus_big", "Grace", None)
    event = customer_event("evt_big", "customer.created", customer) | {"padding": "x" * (100 * 1024)}

    response = await post_signed(client, system, event)

    assert response.status_code == 200
    assert inbound_ids(system) == ["evt_big"]


async def test_an_event_delivered_again_after_it_was_applied_changes_nothing_and_costs_no_database_round_trip(client, system):
    event = customer_event("evt_dup", "customer.created", in_stripe(system, "cus_dup", "Grace Hopper", None))
    await post_signed(client, system, event)
    await system.settle()
    [customer] = list(system.container.database().tables.customers.values())
    history = await system.history(customer.id)

    transactions = system.container.database().transactions
    response = await post_signed(client, system, event)
    assert system.container.database().transactions == transactions  # the request path opened none
    await system.settle()

    assert response.status_code == 200 and response.json()["event_id"] == "evt_dup"
    assert inbound_ids(system).count("evt_dup") == 2  # published again: the worker's inbox drops it
    assert list(system.container.database().tables.customers.values()) == [customer]
    assert await system.history(customer.id) == history


async def test_without_a_configured_secret_webhooks_get_503_and_nothing_is_published():
    unconfigured = EmbeddedSystem(Settings(stripe_webhook_secret=""))
    async with AsyncTestClient(create_app(unconfigured.container)) as http:
        response = await http.post("/api/v1/webhooks/stripe", content=b"{}", headers={"stripe-signature": "t=1,v1=00"})
    assert response.status_code == 503 and response.headers["content-type"].startswith("application/problem+json")
    assert unconfigured.messages("sync.inbound") == []
