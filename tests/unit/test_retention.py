"""Retention from the worker: passes on their schedule, bounded batches, and a deleted customer
scrubbed only once its deletion has settled -- after which nothing of it comes back."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import timedelta

import pytest

from adapters.memory.clock import FakeClock
from adapters.memory.database import InMemoryDatabase
from application.commands import CreateCustomer, DeleteCustomer
from application.customers.create import create_customer
from application.customers.delete import delete_customer
from application.errors import StorageUnavailable
from application.sync.dead_letters import replay_dead_letters
from application.sync.retention import PASS_INTERVAL, Retention, RetentionPass, run_retention
from domain.customer import Customer, CustomerData
from domain.dead_letters import DeadLetter
from domain.mapping import ExternalMapping
from domain.messages import OUTBOUND_TOPIC, ChangeKind, CustomerChanged
from domain.retention import deletion_settled, redacted, scrubbed_letter
from entrypoints.container import build_container
from entrypoints.dev import deliver_stripe_event
from entrypoints.runtime import worker_tasks
from entrypoints.settings import Settings, SettingsError, load_settings
from tests.support.refusals import stripe_refusing

DAYS = 30


# -- the setting ---------------------------------------------------------------------------------


def test_retention_keeps_thirty_days_unless_told_and_zero_keeps_everything():
    assert load_settings({}).retention_days == 30
    assert load_settings({"RETENTION_DAYS": "0"}).retention_days == 0
    assert load_settings({"RETENTION_DAYS": "400"}).retention_days == 400


@pytest.mark.parametrize("days", ["29", "1", "-1", "99999"])
def test_less_than_stripes_thirty_days_of_redeliveries_is_refused_at_start_up(days):
    with pytest.raises(SettingsError, match="RETENTION_DAYS"):
        load_settings({"RETENTION_DAYS": days})


@pytest.mark.parametrize(("days", "runs"), [(30, True), (0, False)])
def test_the_worker_runs_retention_unless_it_is_off(days, runs):
    names = [t.__name__ for t in worker_tasks(build_container(Settings(retention_days=days)))]
    assert ("retain" in names) is runs


# -- the rules -----------------------------------------------------------------------------------


def test_a_deletion_is_settled_once_nothing_of_it_waits_and_every_link_carried_it(clock):
    t = clock.now()
    live = Customer(id=1, data=CustomerData("Ada"), version=1, created_at=t, updated_at=t)
    gone = live.tombstone(t)
    link = ExternalMapping(
        customer_id=1, system="stripe", external_id="cus_1", synced=CustomerData("Ada"), synced_version=1, synced_at=t
    )
    caught_up = ExternalMapping(
        customer_id=1, system="stripe", external_id="cus_1", synced=CustomerData("Ada"), synced_version=gone.version, synced_at=t
    )
    assert not deletion_settled(live, [], unpublished=False, in_flight=False)
    assert not deletion_settled(gone, [], unpublished=True, in_flight=False)
    assert not deletion_settled(gone, [caught_up, link], unpublished=False, in_flight=False)  # one link has not carried it yet
    assert deletion_settled(gone, [caught_up], unpublished=False, in_flight=False) and deletion_settled(
        gone, [], unpublished=False, in_flight=False
    )


def test_an_email_is_redacted_however_it_is_spelled_and_other_text_stays():
    assert redacted("Invalid email address: Ada@Example.com (ada@example.com)", {"ada@example.com"}) == (
        "Invalid email address: [scrubbed] ([scrubbed])"
    )
    assert redacted("conflict on name: kept", {"ada@example.com"}) == "conflict on name: kept"
    assert redacted(None, {"ada@example.com"}) is None


def test_a_letter_nothing_can_read_is_left_as_it_is(clock):
    letter = DeadLetter(id=1, topic=OUTBOUND_TOPIC, key="1", event_id="e", payload=b"\xff", error="x", created_at=clock.now())
    assert scrubbed_letter(letter, ["cus_1"]) is None


# -- passes and their bounds ---------------------------------------------------------------------


class CountingRetention:
    """The unit of work's retention port, counting the statements each kind of call makes."""

    def __init__(self, db: InMemoryDatabase) -> None:
        self.db, self.calls = db, Counter()

    def __call__(self):
        counter, uow = self.calls, self.db.unit_of_work()

        class Counted:
            async def __aenter__(self):
                await uow.__aenter__()
                self.retention = _Spy(uow.retention, counter)
                return self

            async def __aexit__(self, *exc):
                await uow.__aexit__(*exc)

            async def commit(self):
                await uow.commit()

        return Counted()


class _Spy:
    def __init__(self, inner, calls: Counter) -> None:
        self._inner, self._calls = inner, calls

    def __getattr__(self, name):
        method = getattr(self._inner, name)

        async def counted(*args):
            self._calls[name] += 1
            return await method(*args)

        return counted


async def published_events(db: InMemoryDatabase, count: int, at) -> None:
    async with db.unit_of_work() as uow:
        for n in range(count):
            await uow.outbox.add(
                CustomerChanged(
                    event_id=f"e{n}",
                    customer_id=1,
                    kind=ChangeKind.UPDATED,
                    version=n + 1,
                    data=CustomerData("Ada"),
                    occurred_at=at,
                )
            )
        await uow.relay.mark_published([p.position for p in await uow.relay.claim(count)], at)
        await uow.commit()


async def test_five_old_rows_in_batches_of_two_take_three_statements(db, clock):
    await published_events(db, 5, clock.now())
    clock.advance(timedelta(days=DAYS + 1).total_seconds())
    counting = CountingRetention(db)
    done = await Retention(counting, clock, DAYS, batch_size=2).run_pass()
    assert (done.outbox, done.more) == (5, False)
    assert counting.calls["prune_outbox"] == 3 and counting.calls["prune_inbox"] == 1
    assert db.tables.outbox == {}


async def test_a_pass_stops_at_its_bounds_and_the_next_goes_on(db, clock):
    await published_events(db, 5, clock.now())
    clock.advance(timedelta(days=DAYS + 1).total_seconds())
    retention = Retention(db.unit_of_work, clock, DAYS, batch_size=2, max_batches=2)
    first, second = await retention.run_pass(), await retention.run_pass()
    assert (first.outbox, first.more, second.outbox, second.more) == (4, True, 1, False)


async def test_what_is_younger_than_the_retention_stays(db, clock):
    await published_events(db, 3, clock.now())
    clock.advance(timedelta(days=DAYS - 1).total_seconds())
    assert await Retention(db.unit_of_work, clock, DAYS).run_pass() == RetentionPass()
    assert len(db.tables.outbox) == 3


# -- the schedule --------------------------------------------------------------------------------


async def test_the_worker_runs_a_pass_at_once_then_every_hour_until_stopped(db, clock, caplog):
    stopping, passes = asyncio.Event(), []

    def heard(done: RetentionPass) -> None:
        passes.append(clock.now())
        if len(passes) == 3:
            stopping.set()

    with caplog.at_level(logging.DEBUG, logger="application.sync.retention"):
        await asyncio.wait_for(run_retention(db.unit_of_work, clock, stopping, days=DAYS, on_pass=heard), 5)
    start = passes[0]
    assert passes == [start, start + timedelta(seconds=PASS_INTERVAL), start + timedelta(seconds=2 * PASS_INTERVAL)]
    lines = [r for r in caplog.records if r.getMessage().startswith("retention: ")]
    assert len(lines) == 3 and "deleted 0 published outbox event(s)" in lines[0].getMessage()
    assert {r.levelno for r in lines} == {logging.DEBUG}  # a pass with nothing to do is no INFO line every hour


async def test_a_pass_that_deleted_something_says_so_at_info(db, clock, caplog):
    await published_events(db, 2, clock.now())
    clock.advance(timedelta(days=DAYS + 1).total_seconds())
    stopping = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="application.sync.retention"):
        await asyncio.wait_for(run_retention(db.unit_of_work, clock, stopping, days=DAYS, on_pass=lambda _: stopping.set()), 5)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention: ")]
    assert "deleted 2 published outbox event(s)" in line and "older than 30 days" in line


async def test_while_more_is_left_than_a_pass_may_do_the_next_comes_a_second_later(db, clock):
    await published_events(db, 5, clock.now())
    clock.advance(timedelta(days=DAYS + 1).total_seconds())
    stopping, passes = asyncio.Event(), []

    def heard(done: RetentionPass) -> None:
        passes.append((clock.now(), done.outbox))
        if len(passes) == 4:
            stopping.set()

    retention = Retention(db.unit_of_work, clock, DAYS, batch_size=2, max_batches=1)
    await asyncio.wait_for(run_retention(db.unit_of_work, clock, stopping, days=DAYS, retention=retention, on_pass=heard), 5)
    start = passes[0][0]
    assert [(t - start).total_seconds() for t, _ in passes] == [0, 1, 2, 3602]
    assert [n for _, n in passes] == [2, 2, 1, 0]


class StillClock(FakeClock):
    """Time stands still and a sleep lasts until cancelled: only the stopping event ends it."""

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.Event().wait()


async def test_the_stopping_event_ends_the_wait_between_passes(db):
    clock, stopping, first = StillClock(), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_retention(db.unit_of_work, clock, stopping, days=DAYS, on_pass=lambda _: first.set()))
    await asyncio.wait_for(first.wait(), 5)
    await asyncio.sleep(0)
    assert clock.slept == [PASS_INTERVAL] and not task.done()
    stopping.set()
    await asyncio.wait_for(task, 5)


async def test_an_outage_is_waited_out_and_the_pass_made_after(db, clock, caplog):
    failures = iter([StorageUnavailable("cannot reach the database")])

    def factory():
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return db.unit_of_work()

    stopping, passes = asyncio.Event(), []
    with caplog.at_level(logging.WARNING, logger="application.sync.retention"):
        await asyncio.wait_for(
            run_retention(factory, clock, stopping, days=DAYS, on_pass=lambda d: (passes.append(d), stopping.set())), 5
        )
    assert passes == [RetentionPass()]
    assert any("retention pass waits" in r.getMessage() for r in caplog.records)


# -- scrubbing, end to end -----------------------------------------------------------------------


async def create(system, name, email):
    return await create_customer(CreateCustomer(name, email), system.uow_factory(), system.clock)


async def delete(system, customer_id):
    await delete_customer(DeleteCustomer(customer_id=customer_id), system.uow_factory(), system.clock)


def stored_data(system, customer_id):
    return [e.data for _, (e, _) in sorted(system.container.database().tables.outbox.items()) if e.customer_id == customer_id]


async def test_a_deleted_customer_is_scrubbed_and_a_late_event_of_it_changes_nothing(system):
    ada, bea = await create(system, "Ada", "ada@example.com"), await create(system, "Bea", "bea@example.com")
    await system.settle()
    bea_there = (await system.mapping(bea.id)).external_id
    await system.stripe.update_async(bea_there, {"email": "bea@elsewhere.example"})  # a person, in the dashboard
    await system.settle()
    late = dict(system.stripe.events[-1])  # that change's event, which Stripe may deliver again
    await delete(system, bea.id)
    await system.settle()
    assert bea_there in system.stripe.deleted

    done = await Retention(system.uow_factory, system.clock, DAYS).run_pass()

    assert (done.customers_scrubbed, done.rows_scrubbed > 0) == (1, True)
    assert all(d is None for d in stored_data(system, bea.id))
    assert CustomerData("Ada", "ada@example.com") in stored_data(system, ada.id)
    mapping = await system.mapping(bea.id)
    assert (mapping.external_id, mapping.synced, mapping.external_writes) == (bea_there, CustomerData(), {})
    assert (await system.customer(bea.id)).data == CustomerData()
    assert (await system.customer(ada.id)).data == CustomerData("Ada", "ada@example.com")
    assert (await system.mapping(ada.id)).synced == CustomerData("Ada", "ada@example.com")

    # Weeks later the inbox has forgotten the event; Stripe delivers it once more.
    system.clock.advance(timedelta(days=DAYS + 1).total_seconds())
    later = await Retention(system.uow_factory, system.clock, DAYS).run_pass()
    assert later.inbox > 0 and later.outbox > 0 and later.sync_records > 0
    await deliver_stripe_event(system.container, system.stripe, late, system.secret)
    await system.settle()
    async with system.uow_factory() as uow:
        assert (await uow.customers.get(bea.id)).deleted
        assert [c.id for c in await uow.customers.page(after_id=None, limit=10)] == [ada.id]  # nobody imported
        assert await uow.dead_letters.list(10, include_replayed=True) == []
    assert (await system.mapping(bea.id)).synced == CustomerData()


async def test_a_deletion_that_has_not_reached_stripe_keeps_its_data_until_it_does(system):
    bea = await create(system, "Bea", "bea@example.com")
    await system.settle()
    with stripe_refusing(system.stripe, "delete_async", "No such thing"):
        await delete(system, bea.id)
        await system.settle()
    retention = Retention(system.uow_factory, system.clock, DAYS)

    assert (await retention.run_pass()).customers_scrubbed == 0
    assert (await system.mapping(bea.id)).synced == CustomerData("Bea", "bea@example.com")

    await replay_dead_letters(None, system.uow_factory, system.container.publisher(), system.clock)
    await system.settle()
    assert (await retention.run_pass()).customers_scrubbed == 1
    assert (await system.mapping(bea.id)).synced == CustomerData()
    assert all(d is None for d in stored_data(system, bea.id))
