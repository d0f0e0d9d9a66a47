"""Finding 9: signed events with malformed customer objects never delete, never crash, never 5xx.

400 for what is not a Stripe event at all; 200 and a recorded rejection for a genuine event whose
object we refuse (Stripe would redeliver anything else for three days); a ``customer.updated``
whose object says ``deleted: true`` is re-fetched before anything is deleted."""

from __future__ import annotations

import pytest
import stripe

from application.sync.dead_letters import list_dead_letters
from domain.customer import CustomerData
from tests.http.helpers import STRIPE_WEBHOOK
from tests.http.test_webhooks import customer_event, in_stripe, inbound_ids, post_signed
from tests.support.system import WEBHOOK_SECRET


async def rejected_letters(system):
    return [d for d in await list_dead_letters(system.uow_factory(), 50) if d.topic == "webhooks.rejected"]


async def test_an_update_whose_object_says_deleted_is_re_fetched_and_deletes_nothing(client, system, synced_customer):
    external_id = (await system.mapping(synced_customer["id"])).external_id
    event = customer_event("evt_liar", "customer.updated", {"id": external_id, "deleted": True, "name": None, "email": None})
    response = await post_signed(client, system, event)
    assert response.status_code == 200
    await system.settle()
    customer = await system.customer(synced_customer["id"])
    assert not customer.deleted and customer.data == CustomerData("Ada Lovelace", "ada@example.com")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"metadata": ["internal_id", "1"]}, "metadata is not an object"),
        ({"metadata": {"internal_id": 1}}, "metadata is not an object of strings"),
        ({"name": 42}, "name is not a string"),
        ({"email": {"address": "x@example.com"}}, "email is not a string"),
        ({"deleted": "yes"}, "deleted is not a boolean"),
        ({"id": 17}, "no usable id"),
    ],
)
async def test_a_genuine_event_with_a_malformed_customer_is_acknowledged_recorded_and_never_applied(
    client, system, change, reason
):
    event = customer_event("evt_bad", "customer.created", {"id": "cus_bad", "name": "Bad", "email": None, **change})
    response = await post_signed(client, system, event)
    assert response.status_code == 200 and reason in response.json()["rejected"]
    assert inbound_ids(system) == []
    [letter] = await rejected_letters(system)
    assert letter.event_id == "evt_bad" and reason in letter.error
    await system.settle()
    async with system.uow_factory() as uow:
        assert await uow.customers.page(after_id=None, limit=10) == []


@pytest.mark.parametrize("created", [-1, 0, 10**12, 253402300800])
async def test_an_absurd_created_time_is_refused_with_200(client, system, created):
    in_stripe(system, "cus_time", "Time", None)
    event = customer_event("evt_time", "customer.created", {"id": "cus_time", "name": "Time", "email": None}, created=created)
    response = await post_signed(client, system, event)
    assert response.status_code == 200 and "plausible" in response.json()["rejected"]
    assert inbound_ids(system) == []


@pytest.mark.parametrize("claim", ["²", "1e3", "-1", "0", "99999999999999999999", " 1", "１"])
async def test_an_unusable_internal_id_is_no_claim_and_the_customer_is_imported(client, system, synced_customer, claim):
    in_stripe(system, "cus_claim", "Claim", None)
    system.stripe.customers["cus_claim"]["metadata"] = {"internal_id": claim}
    event = customer_event(
        "evt_claim", "customer.created", {"id": "cus_claim", "name": "Claim", "email": None, "metadata": {"internal_id": claim}}
    )
    response = await post_signed(client, system, event)
    assert response.status_code == 200 and response.json()["rejected"] is None
    await system.settle()
    async with system.uow_factory() as uow:
        names = [c.data.name for c in await uow.customers.page(after_id=None, limit=10)]
    assert names == ["Ada Lovelace", "Claim"]  # imported; Ada untouched


async def test_a_repeated_refused_event_is_one_letter_and_replaying_it_dismisses_it(client, system):
    event = customer_event("evt_bad", "customer.updated", {"id": "cus_x", "name": 1, "email": None})
    for _ in range(3):
        assert (await post_signed(client, system, event)).status_code == 200
    [letter] = await rejected_letters(system)
    response = await client.post("/api/v1/dead-letters/replay", json={"ids": [letter.id]})
    assert response.status_code == 200
    assert await rejected_letters(system) == [] and inbound_ids(system) == []


@pytest.mark.parametrize(
    "payload",
    [
        b'{"id": "", "type": "customer.created", "created": 1767225600, "data": {"object": {}}}',
        b'{"id": "evt_1", "type": "customer.created", "created": "soon", "data": {"object": {}}}',
        b'{"id": "evt_1", "type": "customer.created", "created": 1767225600, "data": {"object": []}}',
        b'{"id": "evt_1", "type": 7, "created": 1767225600, "data": {"object": {}}}',
    ],
)
async def test_what_is_not_a_stripe_event_is_400(client, system, payload):
    header = stripe.WebhookSignature.generate_signature_header(payload.decode(), WEBHOOK_SECRET)
    response = await client.post(STRIPE_WEBHOOK, content=payload, headers={"stripe-signature": header})
    assert response.status_code == 400 and inbound_ids(system) == []


@pytest.mark.parametrize("external_id", ["cus_\x00x", "cus_\nx", "cus_" + "x" * 300])
async def test_a_customer_id_the_database_could_not_store_is_refused_with_200(client, system, external_id):
    event = customer_event("evt_nul", "customer.created", {"id": external_id, "name": "Nul", "email": None})
    response = await post_signed(client, system, event)
    assert response.status_code == 200 and "no usable id" in response.json()["rejected"]
    assert inbound_ids(system) == []


async def test_unprintable_tags_are_no_claim(client, system):
    in_stripe(system, "cus_tags", "Tags", None)
    metadata = {"internal_id": "1", "custsync_installation": "x\x00y", "custsync_create": "k\x00"}
    system.stripe.customers["cus_tags"]["metadata"] = metadata
    event = customer_event(
        "evt_tags", "customer.created", {"id": "cus_tags", "name": "Tags", "email": None, "metadata": metadata}
    )
    assert (await post_signed(client, system, event)).status_code == 200
    await system.settle()
    async with system.uow_factory() as uow:
        [customer] = await uow.customers.page(after_id=None, limit=10)
        notes = [r.note or "" for r in await uow.sync_records.for_customer(customer.id, 10)]
    assert not any("\x00" in n for n in notes)
