"""Polling cursors and their lease, on both storages: one poller at a time per cursor."""

import asyncio
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(seconds=30)


async def lease(uow_factory, owner, *, now=T0, ttl=30.0, system="stripe", name="changes"):
    async with uow_factory() as uow:
        cursor = await uow.cursors.lease(system, name, owner, now + timedelta(seconds=ttl), now)
        await uow.commit()
    return cursor


async def advance(uow_factory, owner, position, *, at=T0, system="stripe", name="changes"):
    async with uow_factory() as uow:
        stored = await uow.cursors.advance(system, name, owner, position, at)
        await uow.commit()
    return stored


async def get(uow_factory, system="stripe", name="changes"):
    async with uow_factory() as uow:
        return await uow.cursors.get(system, name)


async def test_the_first_lease_makes_the_cursor_without_a_position(uow_factory):
    assert await get(uow_factory) is None
    cursor = await lease(uow_factory, "w1")
    assert (cursor.system, cursor.name, cursor.position, cursor.leased_by, cursor.leased_until) == (
        "stripe",
        "changes",
        None,
        "w1",
        LATER,
    )
    assert await get(uow_factory) == cursor


async def test_a_running_lease_is_refused_to_others_and_renewed_by_its_holder(uow_factory):
    await lease(uow_factory, "w1")
    assert await lease(uow_factory, "w2", now=T0 + timedelta(seconds=10)) is None
    renewed = await lease(uow_factory, "w1", now=T0 + timedelta(seconds=10))
    assert renewed.leased_until == T0 + timedelta(seconds=40)
    assert await lease(uow_factory, "w2", now=T0 + timedelta(seconds=35)) is None
    assert (await get(uow_factory)).leased_by == "w1"


async def test_an_expired_lease_is_taken_over_and_its_former_holder_can_no_longer_advance(uow_factory):
    await lease(uow_factory, "w1")
    assert await advance(uow_factory, "w1", "100")
    taken = await lease(uow_factory, "w2", now=LATER)  # expired exactly now
    assert (taken.leased_by, taken.position) == ("w2", "100")
    assert not await advance(uow_factory, "w1", "200", at=LATER)
    assert await advance(uow_factory, "w2", "150", at=LATER)
    stored = await get(uow_factory)
    assert (stored.position, stored.updated_at, stored.leased_by) == ("150", LATER, "w2")


async def test_only_the_holder_advances_and_nobody_advances_a_cursor_that_does_not_exist(uow_factory):
    assert not await advance(uow_factory, "w1", "100")
    assert await get(uow_factory) is None
    await lease(uow_factory, "w1")
    assert not await advance(uow_factory, "w2", "100")
    assert (await get(uow_factory)).position is None


async def test_a_released_lease_can_be_taken_at_once_and_only_its_holder_releases_it(uow_factory):
    await lease(uow_factory, "w1")
    async with uow_factory() as uow:
        await uow.cursors.release("stripe", "changes", "w2")  # not the holder: nothing happens
        await uow.commit()
    assert (await get(uow_factory)).leased_by == "w1"
    async with uow_factory() as uow:
        await uow.cursors.release("stripe", "changes", "w1")
        await uow.commit()
    released = await get(uow_factory)
    assert (released.leased_by, released.leased_until) == (None, None)
    assert (await lease(uow_factory, "w2", now=T0 + timedelta(seconds=1))).leased_by == "w2"


async def test_cursors_are_kept_per_system_and_name(uow_factory):
    await lease(uow_factory, "w1")
    assert await lease(uow_factory, "w2", system="salesforce") is not None
    assert await lease(uow_factory, "w2", name="reconcile") is not None
    await advance(uow_factory, "w2", "sf", system="salesforce")
    assert (await get(uow_factory)).position is None
    assert (await get(uow_factory, system="salesforce")).position == "sf"


async def test_a_lease_not_committed_is_not_kept(uow_factory):
    async with uow_factory() as uow:
        assert await uow.cursors.lease("stripe", "changes", "w1", LATER, T0) is not None
    assert await get(uow_factory) is None
    assert await lease(uow_factory, "w2") is not None


async def test_two_pollers_leasing_a_new_cursor_at_once_get_it_exactly_once(uow_factory):
    first_holds = asyncio.Event()

    async def first():
        async with uow_factory() as uow:
            cursor = await uow.cursors.lease("stripe", "changes", "w1", LATER, T0)
            first_holds.set()
            await asyncio.sleep(0.2)  # the second poller's lease runs into this open transaction
            await uow.commit()
        return cursor

    async def second():
        await first_holds.wait()
        return await lease(uow_factory, "w2")

    got = await asyncio.wait_for(asyncio.gather(first(), second()), 10)
    assert [c.leased_by if c else None for c in got] == ["w1", None]
