"""Catch-up from Stripe's events: what webhooks failed to deliver reaches the catalog anyway,
once, from the install on, with one poller at a time -- on the in-memory adapters."""

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime

import pytest

from adapters.clock import SystemClock
from adapters.memory.bus import InMemoryBroker, InMemoryPublisher
from adapters.memory.database import InMemoryDatabase
from adapters.memory.stripe import InMemoryStripe
from adapters.stripe.integration import StripeIntegration
from application.errors import BrokerUnavailable, RetryableIntegrationError
from application.sync import catchup
from application.sync.catchup import CURSOR, catch_up_once, lease_seconds, run_catch_up
from domain.messages import INBOUND_TOPIC
from entrypoints.container import build_container
from entrypoints.runtime import worker_tasks
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET


async def catalog(system) -> dict[str, tuple[str | None, str | None]]:
    """Live catalog customers by their Stripe id, as (name, email)."""
    found = {}
    async with system.uow_factory() as uow:
        for customer in await uow.customers.page(after_id=None, limit=1000):
            mapping = await uow.mappings.get(customer.id, "stripe")
            assert mapping is not None and mapping.external_id not in found, "each Stripe customer once"
            found[mapping.external_id] = (customer.data.name, customer.data.email)
    return found


def stripe_side(system) -> dict[str, tuple[str | None, str | None]]:
    return {cid: (c["name"], c["email"]) for cid, c in system.stripe.customers.items()}


async def cursor(system):
    async with system.uow_factory() as uow:
        return await uow.cursors.get("stripe", CURSOR)


def whole_seconds(at: datetime) -> datetime:
    return datetime.fromtimestamp(int(at.timestamp()), UTC)


class Interleaved:
    """An integration whose ``recent_changes`` runs ``before(n)`` before its n-th call (from 1)."""

    def __init__(self, integration, before) -> None:
        self.system, self._integration, self._before, self.calls = integration.system, integration, before, 0

    async def recent_changes(self, **kwargs):
        self.calls += 1
        await self._before(self.calls)
        return await self._integration.recent_changes(**kwargs)


async def test_changes_made_while_webhooks_were_off_reach_the_catalog_through_catch_up(system, clock):
    system.webhooks = False
    await system.catch_up()  # the first poll: catch-up starts here
    ada = await system.stripe.create_async(params={"name": "Ada"})
    await system.stripe.create_async(params={"name": "Bob", "email": "bob@example.com"})
    await system.stripe.update_async(ada["id"], params={"email": "ada@example.com"})
    await system.settle()
    assert await catalog(system) == {}  # no webhook came

    clock.advance(60)
    done = await system.catch_up()
    assert (done.listed, done.published, done.already_applied, done.complete) == (3, 3, 0, True)
    await system.settle()
    assert await catalog(system) == stripe_side(system) and len(stripe_side(system)) == 2


async def test_what_webhooks_delivered_is_not_published_again(system):
    await system.catch_up()
    await system.stripe.create_async(params={"name": "Ada"})
    await system.settle()  # delivered by webhook and applied (and our tags written back: one more event)
    before = len(system.messages(INBOUND_TOPIC))
    done = await system.catch_up()
    assert done.published == 0 and done.already_applied == done.listed == 2
    assert len(system.messages(INBOUND_TOPIC)) == before


async def test_catch_up_publishes_exactly_the_envelopes_the_webhooks_would(system):
    await system.catch_up()
    ada = await system.stripe.create_async(params={"name": "Ada"}, options={"idempotency_key": "k-1"})
    await system.stripe.update_async(ada["id"], params={"name": "Ada L."})
    gone = await system.stripe.create_async(params={"name": "Gone"})
    await system.stripe.delete_async(gone["id"])
    await system.catch_up()
    caught_up = Counter(system.messages(INBOUND_TOPIC))
    await system.deliver_webhooks()  # the same events by webhook, before the worker applied any
    both = Counter(system.messages(INBOUND_TOPIC))
    assert len(caught_up) == 4 and set(caught_up.values()) == {1}
    assert both == caught_up + caught_up  # each envelope twice: topic, key, event id and payload alike


async def test_the_first_poll_starts_now_and_never_replays_what_came_before_the_install(system, clock):
    system.webhooks = False
    await system.stripe.create_async(params={"name": "Long before"})
    clock.advance(3600)
    await system.stripe.create_async(params={"name": "Ten seconds before"})
    clock.advance(10)
    done = await system.catch_up()
    assert (done.listed, done.published) == (0, 0)  # not even an overlap back: that is a first sync's
    assert done.position == whole_seconds(clock.now())
    clock.advance(1)
    await system.stripe.create_async(params={"name": "After the first poll"})
    clock.advance(10)
    assert (await system.catch_up()).published == 1
    await system.settle()
    assert sorted(name for name, _ in (await catalog(system)).values()) == ["After the first poll"]


async def test_the_cursor_follows_the_newest_change_seen_and_never_goes_back(system, clock):
    system.webhooks = False
    start = whole_seconds(clock.now())
    assert (await system.catch_up()).position == start
    clock.advance(30)
    await system.stripe.create_async(params={"name": "Ada"})
    changed_at = whole_seconds(clock.now())
    clock.advance(30)
    assert (await system.catch_up()).position == changed_at  # the change's time, not the poll's
    clock.advance(600)
    idle = await system.catch_up()  # lists that change again (the overlap): published already
    assert (idle.position, idle.listed, idle.published) == (changed_at, 1, 0)
    assert (await cursor(system)).position == f"{int(changed_at.timestamp())}/{int(start.timestamp())}"  # newest seen / floor


async def test_a_change_listed_late_but_within_the_overlap_is_still_caught(system, clock):
    system.webhooks = False
    await system.catch_up()
    clock.advance(10)
    late = await system.stripe.create_async(params={"name": "Listed late"})
    late_event = system.stripe.events.pop()  # Stripe does not list it yet
    clock.advance(50)
    await system.stripe.create_async(params={"name": "Listed at once"})
    assert (await system.catch_up()).published == 1
    await system.settle()
    system.stripe.events.append(late_event)  # now it is, with its earlier time
    clock.advance(60)
    await system.catch_up()
    assert late_event["id"] in {m.event_id for m in system.messages(INBOUND_TOPIC)}
    await system.settle()
    assert late["id"] in await catalog(system) and await catalog(system) == stripe_side(system)


async def test_a_worker_without_the_lease_skips_the_round_without_calling_stripe(system):
    assert await system.catch_up(owner="w1") is not None
    calls = len(system.stripe.calls)
    assert await system.catch_up(owner="w2") is None
    assert system.stripe.calls[calls:] == []


async def test_a_poller_whose_lease_passed_on_mid_poll_does_no_harm(system, clock):
    system.webhooks = False
    await system.catch_up(owner="w1")
    for name in ("Ada", "Bob", "Cy"):
        await system.stripe.create_async(params={"name": name})

    async def stall_then_let_another_poll(call):
        if call == 1:  # w1 stalls past its lease; w2 takes over and polls it all
            clock.advance(lease_seconds(0) + 1)
            assert (await system.catch_up(owner="w2")).published == 3

    c = system.container
    stalled = Interleaved(c.integrations()["stripe"], stall_then_let_another_poll)
    done = await catch_up_once(stalled, c.uow_factory(), c.publisher(), clock, "w1", 120.0)
    assert (done.published, done.complete) == (3, False)  # published twice, its cursor not stored
    assert (await cursor(system)).leased_by == "w2"
    await system.settle()
    assert await catalog(system) == stripe_side(system) and len(stripe_side(system)) == 3


async def test_a_poll_that_fails_half_way_stores_nothing_and_the_next_reads_it_again(system, clock):
    system.webhooks = False
    await system.catch_up()
    for n in range(150):  # two pages
        await system.stripe.create_async(params={"name": f"C{n}"})

    async def fail_the_second_page(call):
        if call == 2:
            raise RetryableIntegrationError("stripe: 503")

    c = system.container
    failing = Interleaved(c.integrations()["stripe"], fail_the_second_page)
    position = (await cursor(system)).position
    with pytest.raises(RetryableIntegrationError):
        await catch_up_once(failing, c.uow_factory(), c.publisher(), clock, "worker-1", 120.0)
    assert (await cursor(system)).position == position
    await system.settle()  # the first page was published and is applied
    assert len(await catalog(system)) == 100
    again = await system.catch_up()  # the worker restarted: nothing remembered but the cursor
    # The first 100 are applied; the worker wrote our tags back onto them (100 events more, new).
    assert (again.listed, again.published, again.already_applied) == (250, 150, 100)
    await system.settle()
    assert await catalog(system) == stripe_side(system) and len(stripe_side(system)) == 150


# -- the worker's loop (on the real clock, with short intervals) ---------------------------------


class FlakyPublisher:
    def __init__(self, broker: InMemoryBroker, failures: int) -> None:
        self._publisher, self.failures = InMemoryPublisher(broker), failures

    async def publish(self, envelopes):
        if self.failures:
            self.failures -= 1
            raise BrokerUnavailable("broker unreachable")
        await self._publisher.publish(envelopes)


async def wait_for(predicate, timeout=10.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached in time")


async def test_the_loop_waits_out_outages_one_line_per_attempt_then_catches_up_and_stays_quiet(caplog, monkeypatch):
    # import-linter (tests/unit/test_architecture.py) configures logging in-process, which disables
    # every logger that existed then: this one must be heard whatever ran before.
    monkeypatch.setattr(catchup.log, "disabled", False)
    caplog.set_level(logging.INFO, logger=catchup.log.name)
    db, broker, clock = InMemoryDatabase(), InMemoryBroker(), SystemClock()
    fake = InMemoryStripe(clock)
    await fake.create_async(params={"name": "Ada"})
    await fake.create_async(params={"name": "Bob"})

    async def stripe_down_twice(call):
        if call <= 2:
            raise RetryableIntegrationError("stripe: 503 (test)")

    integration = Interleaved(StripeIntegration(fake, [WEBHOOK_SECRET]), stripe_down_twice)
    stopping = asyncio.Event()
    loop = asyncio.create_task(
        run_catch_up(
            {"stripe": integration},
            db.unit_of_work,
            FlakyPublisher(broker, failures=1),
            clock,
            stopping,
            owner="w1",
            interval=0.02,
            overlap=120.0,
        )
    )
    await wait_for(lambda: len(broker.messages(INBOUND_TOPIC)) == 2)
    polls = integration.calls
    await wait_for(lambda: integration.calls >= polls + 3)  # idle polls meanwhile
    stopping.set()
    await asyncio.wait_for(loop, 5)

    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" (attempt")[0].rsplit(" ", 1)[0] for line in lines[:3]] == ["stripe catch-up waits"] * 3
    assert lines[3:] == [
        "stripe catch-up resumed after 3 failed attempt(s)",
        "stripe catch-up: 2 change(s) not applied yet published to sync.inbound, 0 already applied",
    ]
    async with db.unit_of_work() as uow:  # released on a clean stop: another worker may poll at once
        assert (await uow.cursors.get("stripe", CURSOR)).leased_by is None


async def test_every_integration_is_polled_on_its_own_cursor():
    db, broker, clock = InMemoryDatabase(), InMemoryBroker(), SystemClock()
    stripes = {name: InMemoryStripe(clock) for name in ("stripe", "other")}
    for name, fake in stripes.items():
        await fake.create_async(params={"name": f"{name} customer"})
    integrations = {name: StripeIntegration(fake, [WEBHOOK_SECRET], system=name) for name, fake in stripes.items()}
    stopping = asyncio.Event()
    loop = asyncio.create_task(
        run_catch_up(
            integrations,
            db.unit_of_work,
            InMemoryPublisher(broker),
            clock,
            stopping,
            owner="w1",
            interval=0.02,
            overlap=120.0,
        )
    )
    await wait_for(lambda: len(broker.messages(INBOUND_TOPIC)) == 2)
    stopping.set()
    await asyncio.wait_for(loop, 5)
    assert sorted(m.key.split(":")[0] for m in broker.messages(INBOUND_TOPIC)) == ["other", "stripe"]
    async with db.unit_of_work() as uow:
        assert all([await uow.cursors.get(name, CURSOR) for name in integrations])


def test_the_lease_outlives_three_intervals_and_at_least_thirty_seconds():
    assert (lease_seconds(1), lease_seconds(60)) == (30.0, 180.0)


@pytest.mark.parametrize(("interval", "tasks"), [(60.0, 4), (0.0, 3)])
def test_the_worker_runs_catch_up_beside_the_relay_and_the_consumer_unless_it_is_off(interval, tasks):
    container = build_container(Settings(catchup_interval=interval, retention_days=0))
    assert [t.__name__ for t in worker_tasks(container)] == ["relay", "consume", "reconcile", "catch_up"][:tasks]


async def test_a_cursor_stored_before_floors_were_kept_still_reads_its_overlap_back(system, clock):
    """A worker upgraded from a version whose cursor held only the newest change's time ("123"):
    its next poll reads the overlap back as before, not from that time on."""
    from datetime import timedelta

    system.webhooks = False
    await system.stripe.create_async(params={"name": "Listed late"})
    late = int(clock.now().timestamp())
    clock.advance(30)
    async with system.uow_factory() as uow:
        now = clock.now()
        await uow.cursors.lease("stripe", "changes", "old-worker", now + timedelta(seconds=30), now)
        await uow.cursors.advance("stripe", "changes", "old-worker", str(late + 30), now)
        await uow.cursors.release("stripe", "changes", "old-worker")
        await uow.commit()
    assert (await system.catch_up()).published == 1
    await system.settle()
    assert [name for name, _ in (await catalog(system)).values()] == ["Listed late"]


async def test_each_poll_is_counted_with_what_it_found_and_failed_polls_apart():
    from adapters.memory.metrics import InMemoryMetrics

    db, broker, clock = InMemoryDatabase(), InMemoryBroker(), SystemClock()
    fake = InMemoryStripe(clock)
    await fake.create_async(params={"name": "Ada"})
    await fake.create_async(params={"name": "Bob"})
    metrics = InMemoryMetrics()
    stopping = asyncio.Event()
    loop = asyncio.create_task(
        run_catch_up(
            {"stripe": StripeIntegration(fake, [WEBHOOK_SECRET])},
            db.unit_of_work,
            FlakyPublisher(broker, failures=1),
            clock,
            stopping,
            owner="w1",
            interval=0.02,
            overlap=120.0,
            metrics=metrics,
        )
    )
    await wait_for(lambda: metrics.counts["catch-up", "stripe", "ok"] >= 2)
    stopping.set()
    await asyncio.wait_for(loop, 5)
    assert metrics.counts["catch-up", "stripe", "failed"] == 1  # the publish that failed
    assert metrics.counts["catch-up published", "stripe"] == 2  # each missed change once
    assert metrics.counts["catch-up listed", "stripe"] >= 2


async def test_a_first_poll_tried_again_after_a_failure_still_reads_from_when_the_poller_began():
    # The floor of a first poll is the poller's start, not the moment a failed first poll is tried
    # again: changes made in between (here: 3 s of Stripe outage) are not left to a reconcile.
    from adapters.memory.clock import FakeClock

    clock = FakeClock(datetime(2026, 1, 1, 10, 0, 0, 900_000, tzinfo=UTC))
    db, broker = InMemoryDatabase(), InMemoryBroker()
    fake = InMemoryStripe(clock)
    began = clock.now()
    await fake.create_async(params={"name": "Ada"})  # stamped 10:00:00, while the first poll fails
    clock.advance(3)
    done = await catch_up_once(
        StripeIntegration(fake, [WEBHOOK_SECRET]), db.unit_of_work, InMemoryPublisher(broker), clock, "w1", 120.0, began=began
    )
    assert done is not None and done.published == 1 and len(broker.messages(INBOUND_TOPIC)) == 1
