"""The dead-letter store and ``SyncRecordRepository.for_event``, on every storage adapter."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from adapters.postgres.unit_of_work import SqlAlchemyUnitOfWorkFactory
from application.ports import Envelope
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC
from domain.sync import Direction, Operation, SyncRecord, SyncStatus
from tests.contract.test_storage_contract import T0

BEYOND_BIGINT = 2**63


def envelope(
    event_id: str, topic: str = OUTBOUND_TOPIC, error: str = "PermanentIntegrationError: refused", payload: bytes | None = None
) -> Envelope:
    return Envelope(
        topic, f"key-{event_id}", event_id, payload if payload is not None else f'{{"id":"{event_id}"}}'.encode(), error
    )


def at(seconds: int):
    return T0 + timedelta(seconds=seconds)


async def add(uow_factory, *envelopes_at: tuple[Envelope, int]) -> list[int]:
    async with uow_factory() as uow:
        ids = [(await uow.dead_letters.add(e, at(s))).id for e, s in envelopes_at]
        await uow.commit()
    return ids


async def test_a_dead_letter_keeps_its_original_topic_key_bytes_and_error(uow_factory):
    raw = b"\xff\x00not json"
    async with uow_factory() as uow:
        added = await uow.dead_letters.add(envelope("e1", INBOUND_TOPIC, "UndecodableMessage: junk", raw), T0)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.dead_letters.get(added.id)
    assert stored == added
    assert (stored.topic, stored.key, stored.event_id, stored.payload) == (INBOUND_TOPIC, "key-e1", "e1", raw)
    assert (stored.error, stored.created_at, stored.replayed_at) == ("UndecodableMessage: junk", T0, None)


async def test_the_same_event_dying_again_is_the_same_letter_with_the_new_error_and_unreplayed(uow_factory):
    [first] = await add(uow_factory, (envelope("e1", error="first"), 0))
    async with uow_factory() as uow:
        await uow.dead_letters.mark_replayed(await uow.dead_letters.get(first), at(1))
        await uow.commit()
    [again, other_topic] = await add(uow_factory, (envelope("e1", error="second"), 2), (envelope("e1", INBOUND_TOPIC), 3))
    assert again == first and other_topic != first
    async with uow_factory() as uow:
        letter = await uow.dead_letters.get(first)
        assert (letter.error, letter.created_at, letter.replayed_at) == ("second", at(2), None)
        assert len(await uow.dead_letters.list(10, include_replayed=True)) == 2


async def test_the_list_is_newest_first_without_replayed_letters_unless_asked(uow_factory):
    a, b, c = await add(uow_factory, (envelope("a"), 0), (envelope("b"), 2), (envelope("c"), 1))
    async with uow_factory() as uow:
        await uow.dead_letters.mark_replayed(await uow.dead_letters.get(b), at(3))
        await uow.commit()
    async with uow_factory() as uow:
        assert [d.id for d in await uow.dead_letters.list(10)] == [c, a]
        assert [d.id for d in await uow.dead_letters.list(10, include_replayed=True)] == [b, c, a]
        assert [d.id for d in await uow.dead_letters.list(1, include_replayed=True)] == [b]
        assert (await uow.dead_letters.get(b)).replayed_at == at(3)
        assert await uow.dead_letters.list(0) == []


async def test_a_letter_that_died_again_moves_to_the_top_of_the_list(uow_factory):
    a, b = await add(uow_factory, (envelope("a"), 0), (envelope("b"), 1))
    await add(uow_factory, (envelope("a", error="again"), 5))
    async with uow_factory() as uow:
        assert [d.id for d in await uow.dead_letters.list(10)] == [a, b]


async def test_unreplayed_letters_come_in_the_order_they_first_died(uow_factory):
    a, b, c = await add(uow_factory, (envelope("a"), 0), (envelope("b"), 1), (envelope("c"), 2))
    await add(uow_factory, (envelope("a", error="again"), 5))  # died again: still first in line
    async with uow_factory() as uow:
        await uow.dead_letters.mark_replayed(await uow.dead_letters.get(b), at(6))
        await uow.commit()
    async with uow_factory() as uow:
        assert [d.id for d in await uow.dead_letters.unreplayed(None)] == [a, c]
        assert [d.id for d in await uow.dead_letters.unreplayed([c, b, a, c, 999])] == [a, c]
        assert await uow.dead_letters.unreplayed([]) == []


async def test_marking_replayed_does_not_hide_a_letter_that_died_again_since_it_was_read(uow_factory):
    [a] = await add(uow_factory, (envelope("a"), 0))
    async with uow_factory() as uow:
        read = await uow.dead_letters.get(a)
    await add(uow_factory, (envelope("a", error="died during the replay"), 1))
    async with uow_factory() as uow:
        await uow.dead_letters.mark_replayed(read, at(2))
        await uow.commit()
    async with uow_factory() as uow:
        letter = await uow.dead_letters.get(a)
        assert (letter.error, letter.replayed_at) == ("died during the replay", None)


async def test_unknown_and_out_of_range_ids_are_simply_not_found(uow_factory):
    await add(uow_factory, (envelope("a"), 0))
    async with uow_factory() as uow:
        for missing in (999, -1, BEYOND_BIGINT, -BEYOND_BIGINT - 1):
            assert await uow.dead_letters.get(missing) is None
            assert await uow.dead_letters.unreplayed([missing]) == []
        assert len(await uow.dead_letters.list(10)) == 1  # and the transaction is still usable


async def test_the_records_of_one_event_are_found_whatever_their_system_and_direction(uow_factory):
    async with uow_factory() as uow:
        records = [
            SyncRecord.pending("e1", 1, Direction.OUTBOUND, "stripe", Operation.CREATE, T0).failed(T0, "refused", dead=True),
            SyncRecord.pending("e1", 1, Direction.OUTBOUND, "salesforce", Operation.CREATE, T0).succeeded(T0),
            SyncRecord.pending("e1", None, Direction.INBOUND, "stripe", Operation.UPDATE, T0),
            SyncRecord.pending("e2", 1, Direction.OUTBOUND, "stripe", Operation.UPDATE, T0),
        ]
        for record in records:
            await uow.sync_records.save(record)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.sync_records.for_event("e1") == records[:3]
        assert await uow.sync_records.for_event("nope") == []


async def test_a_reopened_record_is_stored_pending_with_its_history(uow_factory):
    dead = SyncRecord.pending("e1", 1, Direction.OUTBOUND, "stripe", Operation.CREATE, T0).failed(at(1), "refused", dead=True)
    async with uow_factory() as uow:
        await uow.sync_records.save(dead)
        await uow.sync_records.save(dead.reopened(at(2)))
        await uow.commit()
    async with uow_factory() as uow:
        [stored] = await uow.sync_records.for_event("e1")
    assert (stored.status, stored.attempts, stored.last_error, stored.note) == (SyncStatus.PENDING, 1, "refused", "replayed")
    assert (stored.created_at, stored.updated_at) == (T0, at(2))


async def test_a_second_replay_waits_for_the_first_and_then_sees_its_letters_replayed(pg_engine):
    uow_factory = SqlAlchemyUnitOfWorkFactory(pg_engine)
    [a] = await add(uow_factory, (envelope("a"), 0))
    async with uow_factory() as first, uow_factory() as second:
        [letter] = await first.dead_letters.unreplayed([a])
        racing = asyncio.create_task(second.dead_letters.unreplayed([a]))
        await asyncio.sleep(0.2)
        assert not racing.done()  # blocked on the first one's row lock
        await first.dead_letters.mark_replayed(letter, at(1))
        await first.commit()
        assert await racing == []
