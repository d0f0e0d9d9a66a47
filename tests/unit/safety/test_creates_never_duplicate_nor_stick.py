"""Findings 5 and 6: a create reaches Stripe exactly once, whatever Stripe saved under its key.

Stripe saves a 500 under an Idempotency-Key once execution started and replays it to every retry
for 24 hours (``Idempotent-Replayed: true``); keys expire after 24 hours; validation failures are
not saved. The in-memory Stripe models all three (``adapters/memory/stripe.py``)."""

from datetime import timedelta

import pytest

from application.commands import CreateCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.update import patch_customer
from application.errors import RetryableIntegrationError
from application.sync.dead_letters import replay_dead_letters
from application.sync.outbound import sync_outbound
from domain.messages import OUTBOUND_TOPIC, CustomerChanged, decode
from domain.sync import Direction, SyncStatus


async def create(system, name="Ada", email="ada@example.com"):
    return await create_customer(CreateCustomer(name, email), system.uow_factory(), system.clock)


def create_keys(system):
    return [key for method, key in system.stripe.calls if method == "create"]


async def test_a_replayed_500_for_a_create_that_landed_links_it_instead_of_retrying_forever(system):
    system.stripe.fail_next("create", 500, executed=True)  # made the customer, then answered 500
    customer = await create(system)
    await system.settle()
    assert len(system.stripe.customers) == 1
    mapping = await system.mapping(customer.id)
    assert mapping.external_id in system.stripe.customers and mapping.in_sync_with(await system.customer(customer.id))
    keys = create_keys(system)
    assert len(keys) == 2 and keys[0] == keys[1]  # the retry got the saved 500, then the look-up found it
    assert system.messages(f"{OUTBOUND_TOPIC}.dlq") == []


async def test_a_replayed_500_for_a_create_that_made_nothing_is_sent_again_under_a_new_key(system):
    system.stripe.fail_next("create", 500, executed=False)
    customer = await create(system)
    await system.settle()
    [(external_id, twin)] = system.stripe.customers.items()
    assert (await system.mapping(customer.id)).external_id == external_id and twin["name"] == "Ada"
    first, replayed, renewed = create_keys(system)
    assert first == replayed != renewed
    assert twin["metadata"]["custsync_create"] == renewed


async def test_a_create_whose_answer_and_webhook_were_lost_for_a_day_is_found_not_made_twice(system):
    system.stripe.fail_next("create", 500, executed=True)
    customer = await create(system)
    await system.relay()
    [envelope] = system.messages(OUTBOUND_TOPIC)
    event = decode(envelope.payload, CustomerChanged)
    with pytest.raises(RetryableIntegrationError):
        await sync_outbound(event, system.container.integrations(), await system.context())
    system.clock.advance(timedelta(hours=25).total_seconds())  # the worker was down; Stripe forgot the key
    await sync_outbound(event, system.container.integrations(), await system.context())
    assert len(system.stripe.customers) == 1 and len(create_keys(system)) == 1  # looked up, not repeated
    assert (await system.mapping(customer.id)).external_id in system.stripe.customers


async def test_a_refused_create_sends_the_fixed_state_once_replayed(system):
    system.stripe.refuse(lambda params: params.get("name") == "Rejected")  # a validation error: not saved
    customer = await create(system, name="Rejected")
    await system.settle()
    [record] = [r for r in await system.history(customer.id) if r.direction is Direction.OUTBOUND]
    assert record.status is SyncStatus.DEAD
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "Fixed"}), system.uow_factory(), system.clock)
    await replay_dead_letters(None, system.uow_factory, system.container.publisher(), system.clock)
    await system.settle()
    [twin] = system.stripe.customers.values()
    assert twin["name"] == "Fixed"  # not the refused fields again
    refused, *later = create_keys(system)
    assert later and refused not in later
