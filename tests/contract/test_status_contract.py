"""The status screen's aggregates (``StatusRepository``), on every storage adapter."""

from __future__ import annotations

from datetime import timedelta

from application.ports import Envelope
from domain.customer import CustomerData
from domain.mapping import ExternalMapping
from domain.sync import Direction, Operation, SyncRecord
from tests.contract.test_storage_contract import T0, event


def record(event_id: str, customer_id: int, direction=Direction.OUTBOUND, system: str = "stripe") -> SyncRecord:
    return SyncRecord.pending(event_id, customer_id, direction, system, Operation.UPDATE, T0)


async def catalog(uow_factory):
    """Five live customers and one deleted: linked and in sync, behind, broken, unlinked twice,
    and a tombstone (never counted as out of sync)."""
    async with uow_factory() as uow:
        ids = [(await uow.customers.add(CustomerData(f"C{i}"), T0)).id for i in range(6)]
        in_sync, behind, broken, failing, unlinked, deleted = ids
        for cid in (in_sync, behind, broken):
            await uow.mappings.save(
                ExternalMapping(
                    customer_id=cid,
                    system="stripe",
                    external_id=f"cus_{cid}",
                    synced=CustomerData(f"C{ids.index(cid)}"),
                    synced_version=1,
                    synced_at=T0,
                    broken="404 there" if cid == broken else None,
                )
            )
        await uow.customers.save((await uow.customers.get(behind)).revised(CustomerData("C1 new"), T0 + timedelta(seconds=1)))
        await uow.customers.save((await uow.customers.get(deleted)).tombstone(T0))
        await uow.sync_records.save(record("e-ok-out", in_sync).succeeded(T0 + timedelta(minutes=5)))
        await uow.sync_records.save(record("e-ok-in", in_sync, Direction.INBOUND).succeeded(T0 + timedelta(minutes=7)))
        await uow.sync_records.save(record("e-old", in_sync).succeeded(T0 - timedelta(hours=2)))
        await uow.sync_records.save(
            record("e-retry", failing, Direction.INBOUND).failed(T0 + timedelta(minutes=8), "stripe: 503", dead=False)
        )
        await uow.sync_records.save(record("e-dead", failing).failed(T0 + timedelta(minutes=9), "stripe: 400 refused", dead=True))
        await uow.sync_records.save(record("e-pending", unlinked))
        await uow.sync_records.save(record("e-other", unlinked, system="other").failed(T0, "other: 500", dead=False))
        # Not counted as failing: a dead record a later change has carried past, and a deleted customer's.
        await uow.sync_records.save(record("e-passed", behind).failed(T0 - timedelta(hours=3), "stripe: 400", dead=True))
        await uow.sync_records.save(record("e-after", behind).succeeded(T0 - timedelta(hours=3)))
        await uow.sync_records.save(record("e-gone", deleted).failed(T0 - timedelta(hours=3), "stripe: 400", dead=True))
        await uow.outbox.add(event(behind, 1))
        await uow.outbox.add(event(behind, 2))
        await uow.dead_letters.add(Envelope("sync.outbound", "k", "e-dead", b"{}", "refused"), T0)
        letter = await uow.dead_letters.add(Envelope("sync.inbound", "k", "e-gone", b"{}", "refused"), T0)
        await uow.dead_letters.mark_replayed(letter, T0)
        await uow.commit()
    return ids


async def test_the_outbox_backlog_counts_unpublished_events_and_knows_the_oldest(uow_factory):
    await catalog(uow_factory)
    async with uow_factory() as uow:
        count, oldest = await uow.status.outbox_backlog()
        pending = await uow.relay.claim(10)
        await uow.relay.mark_published([pending[0].position], T0)
        await uow.commit()
    async with uow_factory() as uow:
        assert (count, oldest is not None) == (2, True)
        assert (await uow.status.outbox_backlog())[0] == 1


async def test_dead_letters_waiting_are_counted_by_topic_without_the_replayed(uow_factory):
    await catalog(uow_factory)
    async with uow_factory() as uow:
        assert await uow.status.dead_letters_waiting() == {"sync.outbound": 1}


async def test_activity_tells_the_last_successes_the_window_and_the_last_error(uow_factory):
    await catalog(uow_factory)
    async with uow_factory() as uow:
        activity = await uow.status.activity("stripe", since=T0)
    assert activity.last_outbound == T0 + timedelta(minutes=5)
    assert activity.last_inbound == T0 + timedelta(minutes=7)
    assert (activity.settled, activity.failing) == (2, 2)  # the success two hours before the window is out of it
    assert (activity.last_error, activity.last_error_at) == ("stripe: 400 refused", T0 + timedelta(minutes=9))
    assert activity.oldest_unsettled == T0  # the pending one and the retrying one, made at T0


async def test_customers_not_in_sync_are_counted_by_status_per_system(uow_factory):
    await catalog(uow_factory)
    async with uow_factory() as uow:
        stripe = await uow.status.out_of_sync("stripe")
        other = await uow.status.out_of_sync("other")
    assert stripe == {"unlinked": 2, "behind": 1, "broken": 1, "retrying": 1, "dead": 1}
    assert other == {"unlinked": 5, "behind": 0, "broken": 0, "retrying": 1, "dead": 0}
