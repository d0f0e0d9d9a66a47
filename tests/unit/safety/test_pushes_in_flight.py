"""Pushes whose answer was lost: what Stripe then holds is recognised as ours only while it may still
be ours (found by the second hostile review). An older landed push is never taken for a person's
change, and a person's change is never taken for a push of ours that died long ago."""

import pytest

from application.errors import RetryableIntegrationError
from tests.unit.safety.helpers import last_outbound, make, new_customer, notes, outbound, patch, settle_all, state

POLICIES = ["latest_wins", "stripe_wins", "internal_wins"]


@pytest.mark.parametrize("policy", POLICIES)
async def test_an_older_landed_push_is_ours_even_after_a_newer_one_was_sent(clock, policy):
    system = make(clock, policy)
    cid, xid = await new_customer(system)
    clock.advance(5)
    await patch(system, cid, name="B")
    event = await last_outbound(system)
    system.stripe.fail_next("update", 500, executed=True)  # B lands, its answer is lost
    with pytest.raises(RetryableIntegrationError):
        await outbound(system, event)
    clock.advance(5)
    await patch(system, cid, name="C")  # the user edits again
    system.stripe.fail_next("update", 429)  # the retry, sending C, does not land
    with pytest.raises(RetryableIntegrationError):
        await outbound(system, event)
    await settle_all(system)
    assert await state(system, cid, xid) == (("C", "a@example.com"), ("C", "a@example.com")), await notes(system, cid)


@pytest.mark.parametrize("policy", POLICIES)
async def test_a_persons_change_equal_to_a_push_that_died_long_ago_is_theirs(clock, policy):
    system = make(clock, policy)
    cid, xid = await new_customer(system)
    clock.advance(5)
    # The push of B never lands (a 503), then its retry is refused for good: dead-lettered.
    await patch(system, cid, name="B")
    system.stripe.fail_next("update", 503)
    system.stripe.fail_next("update", 400)
    await system.relay()
    await system.consume()
    clock.advance(5)
    await patch(system, cid, name="A")  # the user puts A back: Stripe holds A, nothing to push
    await system.relay()
    await system.consume()
    assert len(system.messages("sync.outbound.dlq")) == 1
    system.stripe.faults.clear()
    clock.advance(3 * 3600)
    await system.stripe.update_async(xid, params={"name": "B"})  # hours later, a person sets B
    await settle_all(system)
    here, there = await state(system, cid, xid)
    assert (here[0], there[0]) == ("B", "B"), (here, there, await notes(system, cid))
