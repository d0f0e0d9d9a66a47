"""Dead letters are kept, listed and replayed: after a fix, a replay carries the change through."""

import pytest

from application.commands import CreateCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.update import patch_customer
from application.sync.dead_letters import list_dead_letters, replay_dead_letters
from domain.errors import DeadLetterNotFound
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC
from domain.sync import Direction, Operation, SyncRecord, SyncStatus
from tests.support.refusals import REFUSAL, stripe_refusing


async def create(system, name="Ada", email="ada@example.com"):
    return await create_customer(CreateCustomer(name, email), system.uow_factory(), system.clock)


async def dead_letters(system, include_replayed=False):
    return await list_dead_letters(system.uow_factory(), 50, include_replayed)


async def replay(system, ids=None):
    c = system.container
    return await replay_dead_letters(ids, c.uow_factory(), c.publisher(), system.clock)


async def outbound_record(system, customer_id):
    [record] = [r for r in await system.history(customer_id) if r.direction is Direction.OUTBOUND]
    return record


async def refused_create(system):
    """Ada, whose create Stripe refused for good: her event is a dead letter."""
    with stripe_refusing(system.stripe):
        customer = await create(system)
        await system.settle()
    return customer


def test_a_reopened_record_is_pending_again_and_keeps_what_went_wrong(clock):
    dead = SyncRecord.pending("e1", 1, Direction.OUTBOUND, "stripe", Operation.CREATE, clock.now()).failed(
        clock.now(), "refused", dead=True
    )
    clock.advance(60)
    reopened = dead.reopened(clock.now())
    assert (reopened.status, reopened.attempts, reopened.last_error, reopened.note) == (
        SyncStatus.PENDING,
        1,
        "refused",
        "replayed",
    )
    assert not reopened.status.settled and reopened.updated_at == clock.now()


async def test_a_create_stripe_refused_is_dead_and_listed_with_its_error(system):
    customer = await refused_create(system)
    assert (await outbound_record(system, customer.id)).status is SyncStatus.DEAD
    [letter] = await dead_letters(system)
    [envelope] = system.messages(OUTBOUND_TOPIC)
    assert (letter.topic, letter.event_id, letter.key, letter.payload) == (
        OUTBOUND_TOPIC,
        envelope.event_id,
        envelope.key,
        envelope.payload,
    )
    assert REFUSAL in letter.error and letter.replayed_at is None


async def test_after_the_fix_a_replay_carries_the_create_to_stripe(system):
    customer = await refused_create(system)
    [letter] = await dead_letters(system)
    assert await replay(system, [letter.id]) == [letter.id]
    await system.settle()
    mapping = await system.mapping(customer.id)
    assert list(system.stripe.customers) == [mapping.external_id]
    record = await outbound_record(system, customer.id)
    assert (record.status, record.attempts, record.last_error) == (SyncStatus.SUCCEEDED, 2, None)
    assert await dead_letters(system) == []
    [replayed] = await dead_letters(system, include_replayed=True)
    assert replayed.replayed_at == system.clock.now()


async def test_a_replay_goes_back_on_the_original_topic_with_the_same_key_and_event_id(system):
    await refused_create(system)
    [_letter] = await dead_letters(system)
    await replay(system)
    original, replayed = system.messages(OUTBOUND_TOPIC)
    assert (replayed.key, replayed.event_id, replayed.payload, replayed.error) == (
        original.key,
        original.event_id,
        original.payload,
        None,
    )


async def test_a_replay_pushes_the_customers_current_state_not_the_dead_snapshot(system):
    customer = await refused_create(system)
    with stripe_refusing(system.stripe):
        await patch_customer(
            PatchCustomer(customer_id=customer.id, changes={"name": "Ada L."}), system.uow_factory(), system.clock
        )
        await system.settle()
    assert len(await dead_letters(system)) == 2
    await replay(system)
    await system.settle()
    [twin] = system.stripe.customers.values()
    assert twin["name"] == "Ada L." and len(system.stripe.customers) == 1


async def test_replaying_twice_is_refused_by_id_and_a_no_op_for_all(system):
    await refused_create(system)
    [letter] = await dead_letters(system)
    await replay(system, [letter.id])
    await system.settle()
    published = len(system.messages(OUTBOUND_TOPIC))
    with pytest.raises(DeadLetterNotFound) as refused:
        await replay(system, [letter.id])
    assert refused.value.replayed == (letter.id,) and refused.value.unknown == ()
    assert f"dead letter {letter.id} already replayed" in str(refused.value)
    assert await replay(system) == []
    assert len(system.messages(OUTBOUND_TOPIC)) == published


async def test_an_unknown_id_refuses_the_whole_replay(system):
    customer = await refused_create(system)
    [letter] = await dead_letters(system)
    published = len(system.messages(OUTBOUND_TOPIC))
    with pytest.raises(DeadLetterNotFound) as refused:
        await replay(system, [letter.id, 404])
    assert refused.value.unknown == (404,)
    assert len(system.messages(OUTBOUND_TOPIC)) == published
    assert [d.id for d in await dead_letters(system)] == [letter.id]  # still waiting
    assert (await outbound_record(system, customer.id)).status is SyncStatus.DEAD


async def test_a_replay_that_dies_again_comes_back_to_the_list_with_its_new_error(system):
    customer = await refused_create(system)
    [letter] = await dead_letters(system)
    with stripe_refusing(system.stripe, message="Invalid email address: still refused"):
        await replay(system, [letter.id])
        await system.settle()
    [again] = await dead_letters(system)
    assert again.id == letter.id and "still refused" in again.error and again.replayed_at is None
    record = await outbound_record(system, customer.id)
    assert (record.status, record.attempts) == (SyncStatus.DEAD, 2)
    await replay(system, [letter.id])  # and once fixed, it goes through
    await system.settle()
    assert (await outbound_record(system, customer.id)).status is SyncStatus.SUCCEEDED


async def test_an_inbound_dead_letter_replays_into_the_catalog(system):
    with stripe_refusing(system.stripe, "retrieve_async", "No such customer: 'cus_x'"):
        created = await system.stripe.create_async(params={"name": "Grace Hopper"})
        await system.settle()
    [letter] = await dead_letters(system)
    assert letter.topic == INBOUND_TOPIC and await system.customer(1) is None
    assert await replay(system) == [letter.id]
    await system.settle()
    customer = await system.customer(1)
    assert customer.name == "Grace Hopper" and (await system.mapping(customer.id)).external_id == created["id"]
    [record] = [r for r in await system.history(customer.id) if r.event_id == letter.event_id]
    assert (record.direction, record.status) == (Direction.INBOUND, SyncStatus.SUCCEEDED)


class BrokerDown:
    async def publish(self, envelopes):
        raise ConnectionError("broker unreachable")


async def test_a_replay_that_cannot_publish_leaves_the_letter_waiting_and_the_record_dead(system):
    customer = await refused_create(system)
    [letter] = await dead_letters(system)
    with pytest.raises(ConnectionError):
        await replay_dead_letters(None, system.uow_factory, BrokerDown(), system.clock)
    assert [d.id for d in await dead_letters(system)] == [letter.id]
    assert (await outbound_record(system, customer.id)).status is SyncStatus.DEAD
