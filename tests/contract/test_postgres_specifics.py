"""What only the PostgreSQL adapter has to get right: relays running side by side, waking the relay
with LISTEN/NOTIFY, refusing to start on an unmigrated schema. Tests taking ``uow_factory`` also
run on the in-memory adapter, to pin that both agree on the edge cases."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import msgspec
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import make_url

from adapters.memory.clock import FakeClock
from adapters.postgres.engine import create_engine
from adapters.postgres.migrations import SchemaNotMigrated, ensure_migrated, upgrade
from adapters.postgres.repositories import oldest_pending
from adapters.postgres.tables import metadata
from adapters.postgres.unit_of_work import SqlAlchemyUnitOfWorkFactory
from adapters.postgres.wakeup import PostgresOutboxWakeup, asyncpg_dsn
from application.sync.relay import relay_once
from domain.customer import CustomerData
from domain.errors import ConcurrentUpdate
from domain.messages import CustomerChanged, decode, encode
from tests.contract.test_storage_contract import T0, event, mapping

BEYOND_BIGINT = 2**63


@pytest.fixture
def pg_uow_factory(pg_engine) -> SqlAlchemyUnitOfWorkFactory:
    return SqlAlchemyUnitOfWorkFactory(pg_engine)


async def add_events(uow_factory, events: list[CustomerChanged]) -> None:
    async with uow_factory() as uow:
        for e in events:
            await uow.outbox.add(e)
        await uow.commit()


async def test_one_relay_claims_at_a_time_the_oldest_pending_events(pg_uow_factory):
    await add_events(pg_uow_factory, [event(1, 0), event(2, 0), event(1, 1), event(3, 0), event(2, 1), event(3, 1)])
    async with pg_uow_factory() as first:
        held = [p.event.event_id for p in await first.relay.claim(2)]
        assert held == ["e-1-0", "e-2-0"]
        async with pg_uow_factory() as second:
            assert await second.relay.claim(10) == []  # the first holds a batch: wait for its commit
        await first.relay.mark_published([1, 2], T0)
        await first.commit()
    async with pg_uow_factory() as uow:
        assert [p.event.event_id for p in await uow.relay.claim(10)] == ["e-1-1", "e-3-0", "e-2-1", "e-3-1"]


async def test_a_claim_reads_its_batch_not_the_backlog_of_a_busy_customer(pg_uow_factory, pg_engine):
    from sqlalchemy import text

    async with pg_engine.connect() as connection:  # 20,000 pending events of one customer, then one of another
        await connection.execute(
            text("""
            INSERT INTO outbox (event_id, customer_id, payload)
            SELECT 'bulk-' || i, 1, CAST(:payload AS jsonb) FROM generate_series(1, 20000) AS i
        """),
            {"payload": encode(event(1, 0)).decode()},
        )
        await connection.commit()
    await add_events(pg_uow_factory, [event(2, 0)])
    async with pg_engine.connect() as connection:
        await connection.execute(text("ANALYZE outbox"))
        await connection.commit()
        claim = oldest_pending(200).compile(dialect=pg_engine.dialect, compile_kwargs={"literal_binds": True})
        plan = "\n".join(row[0] for row in await connection.execute(text(f"EXPLAIN (ANALYZE, FORMAT TEXT) {claim}")))
    assert "ix_outbox_pending" in plan and "rows=200 " in plan  # an index range of the batch, no scan of the rest
    async with pg_uow_factory() as uow:
        assert len(await uow.relay.claim(200)) == 200


async def test_the_ledger_hands_out_disjoint_slots_to_every_process_on_the_database_clock(pg_engine):
    from adapters.budget import slot_step
    from adapters.postgres.budget import PostgresLedger

    ledgers = [PostgresLedger(pg_engine, "test-budget", 100.0) for _ in range(4)]
    leases = await asyncio.gather(*(ledger(5) for ledger in ledgers for _ in range(5)))
    step = slot_step(100.0)
    slots = sorted(lease.first + i * step for lease in leases for i in range(lease.count))
    assert len(slots) == 100 and all(b - a >= step for a, b in itertools.pairwise(slots))  # no slot shared
    first = min(lease.first for lease in leases)
    assert max(slots) - first == 99 * step  # and none wasted between reservations made back to back
    assert all(abs((lease.now - lease.first).total_seconds()) < 5 for lease in leases[:1])


class RecordingPublisher:
    """Stands in for Kafka: records what each relay sent, yielding mid-publish so relays interleave."""

    def __init__(self, log: list[tuple[int, CustomerChanged]], relay: int, rng: random.Random) -> None:
        self._log, self._relay, self._rng = log, relay, rng

    async def publish(self, envelopes) -> None:
        await asyncio.sleep(self._rng.uniform(0, 0.01))
        self._log.extend((self._relay, decode(e.payload, CustomerChanged)) for e in envelopes)


async def test_concurrent_relays_publish_every_event_once_and_each_customers_in_order(pg_uow_factory):
    rng = random.Random(20260101)
    queues = {c: [event(c, n) for n in range(5)] for c in range(1, 13)}
    interleaved = []
    while any(queues.values()):
        interleaved.append(queues[rng.choice([c for c, q in queues.items() if q])].pop(0))
    await add_events(pg_uow_factory, interleaved)
    sent: list[tuple[int, CustomerChanged]] = []
    moved = [0]

    async def relay(n: int) -> None:
        publisher = RecordingPublisher(sent, n, rng)
        while moved[0] < len(interleaved):
            done = await relay_once(pg_uow_factory, publisher, FakeClock(), batch_size=4)
            moved[0] += done
            # Between turns, as a relay waits for its wakeup: without it the relay that just
            # committed claims again before the others' retry sleeps end, and takes every turn.
            await asyncio.sleep(0.002 if done == 0 else rng.uniform(0, 0.004))

    await asyncio.wait_for(asyncio.gather(*(relay(n) for n in range(4))), timeout=30)
    assert moved[0] == len(interleaved)  # every event claimed and marked once
    assert len({e.event_id for _, e in sent}) == len(sent)  # none published twice
    per_customer = defaultdict(list)
    for _, e in sent:
        per_customer[e.customer_id].append(e.version)
    # In order, each customer's last change sent; earlier ones only left out where a later one
    # (batched with it) stands for them.
    assert all(v == sorted(set(v)) and v[-1] == 5 for v in per_customer.values()), per_customer
    assert len(per_customer) == 12 and len(sent) < len(interleaved)
    assert len({relay for relay, _ in sent}) > 1, "the relays took no turns"


@pytest.fixture
async def wakeup(postgres_url):
    wakeup = PostgresOutboxWakeup(postgres_url, application_name=f"custsync-test-{uuid.uuid4().hex[:12]}")
    yield wakeup
    await wakeup.close()


async def timed(awaitable) -> float:
    started = asyncio.get_running_loop().time()
    await awaitable
    return asyncio.get_running_loop().time() - started


async def add_later(uow_factory, events: list[CustomerChanged], *, commit: bool, delay: float = 0.2) -> None:
    await asyncio.sleep(delay)
    async with uow_factory() as uow:
        for e in events:
            await uow.outbox.add(e)
        if commit:
            await uow.commit()


async def test_the_wakeup_returns_promptly_when_outbox_events_are_committed(pg_uow_factory, wakeup):
    # The first wait returns at once: it cannot know what was committed before it listened.
    assert await timed(wakeup.wait(10)) < 2
    writer = asyncio.create_task(add_later(pg_uow_factory, [event(1, 0), event(1, 1)], commit=True))
    assert await timed(wakeup.wait(10)) < 2
    await writer


async def test_the_wakeup_sleeps_out_its_timeout_when_nothing_is_committed(pg_uow_factory, wakeup):
    await wakeup.wait(10)
    rolled_back = asyncio.create_task(add_later(pg_uow_factory, [event(1, 0)], commit=False, delay=0.05))
    assert 0.5 <= await timed(wakeup.wait(0.5)) < 2
    await rolled_back


async def test_the_wakeup_reconnects_when_its_connection_is_killed(postgres_url, pg_uow_factory, wakeup):
    await wakeup.wait(10)
    admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        listeners = "FROM pg_stat_activity WHERE application_name = $1"
        assert await admin.fetchval(f"SELECT count(pg_terminate_backend(pid)) {listeners}", wakeup.application_name) == 1
        # Woken by the drop, or by the reconnection that follows it: either way at once, since
        # what was committed in between went unheard.
        assert await timed(wakeup.wait(10)) < 2
        await wakeup.wait(0.3)  # absorbs the other of those two wakeups, if it is still to come
        assert await admin.fetchval(f"SELECT count(*) {listeners}", wakeup.application_name) == 1
    finally:
        await admin.close()
    writer = asyncio.create_task(add_later(pg_uow_factory, [event(1, 0)], commit=True))
    assert await timed(wakeup.wait(10)) < 2
    await writer


@pytest.fixture
async def unmigrated_url(postgres_url):
    """A throwaway database with nothing in it, dropped afterwards."""
    name = f"custsync_unmigrated_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_an_unmigrated_database_is_refused_until_upgraded(unmigrated_url):
    engine = create_engine(unmigrated_url, pool_size=1)
    try:
        with pytest.raises(SchemaNotMigrated) as refused:
            await ensure_migrated(engine)
        url = make_url(unmigrated_url)
        assert (
            str(refused.value) == f"the database at {url.host}:{url.port}/{url.database} is not migrated: run `custsync migrate`"
        )
        assert "custsync:custsync" not in str(refused.value)
        await asyncio.to_thread(upgrade, unmigrated_url)  # the CLI's synchronous path, on its own engine
        await ensure_migrated(engine)
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
        with pytest.raises(SchemaNotMigrated):
            await ensure_migrated(engine)
    finally:
        await engine.dispose()


async def test_the_migrations_build_exactly_the_schema_the_tables_describe(pg_engine):
    async with pg_engine.connect() as connection:
        diff = await connection.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
    assert diff == []


async def test_ids_beyond_bigint_are_simply_not_found(uow_factory):
    async with uow_factory() as uow:
        customer = await uow.customers.add(CustomerData("A"), T0)
        await uow.mappings.save(mapping(customer.id, "cus_1"))
        await uow.outbox.add(event(customer.id))
        for huge in (BEYOND_BIGINT, -BEYOND_BIGINT - 1):
            assert await uow.customers.get(huge) is None
            assert await uow.mappings.get(huge, "stripe") is None
            assert await uow.mappings.for_customer(huge) == []
            assert await uow.sync_records.for_customer(huge, 10) == []
            await uow.mappings.remove(huge, "stripe")
            with pytest.raises(ConcurrentUpdate):
                await uow.customers.save(msgspec.structs.replace(customer.revised(CustomerData("B"), T0), id=huge))
        assert await uow.customers.page(after_id=BEYOND_BIGINT, limit=10) == []
        assert [c.id for c in await uow.customers.page(after_id=-BEYOND_BIGINT - 1, limit=10)] == [customer.id]
        assert len(await uow.relay.claim(10)) == 1  # and the transaction is still usable


async def test_timestamps_round_trip_to_the_microsecond_in_utc(uow_factory):
    at = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    async with uow_factory() as uow:
        customer = await uow.customers.add(CustomerData("A"), at)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.customers.get(customer.id)
    assert stored == customer
    assert stored.created_at.astimezone(UTC) == datetime(2026, 3, 28, 23, 30, 15, 123456, tzinfo=UTC)
    assert stored.created_at.utcoffset() in (timedelta(0), timedelta(hours=2))


async def test_a_unit_of_work_goes_on_after_commit_and_rolls_back_the_rest(uow_factory):
    async with uow_factory() as uow:
        kept = await uow.customers.add(CustomerData("kept"), T0)
        await uow.commit()
        dropped = await uow.customers.add(CustomerData("dropped"), T0)
        assert await uow.customers.get(dropped.id) is not None
    async with uow_factory() as uow:
        assert await uow.customers.get(kept.id) == kept
        assert await uow.customers.get(dropped.id) is None


async def test_a_redelivered_event_racing_past_the_inbox_check_cannot_commit_twice(pg_uow_factory):
    async with pg_uow_factory() as first, pg_uow_factory() as second:
        assert not await first.inbox.seen("stripe", "evt_1")
        assert not await second.inbox.seen("stripe", "evt_1")
        await first.inbox.add("stripe", "evt_1", T0)
        racing = asyncio.create_task(second.inbox.add("stripe", "evt_1", T0))
        await asyncio.sleep(0.2)
        assert not racing.done()  # blocked on the first one's uncommitted key
        await first.commit()
        with pytest.raises(Exception, match="duplicate key"):
            await racing


async def test_two_concurrent_transactions_cannot_both_write_one_mapping(pg_uow_factory):
    # Finding 8 as PostgreSQL allows it: inbound and outbound for one customer, at the same time,
    # under READ COMMITTED. The second writer of the same version must fail, not overwrite.
    async with pg_uow_factory() as uow:
        customer = await uow.customers.add(CustomerData("A"), T0)
        await uow.mappings.save(mapping(customer.id, "cus_1"))
        await uow.commit()
    async with pg_uow_factory() as inbound, pg_uow_factory() as outbound:
        seen_in = await inbound.mappings.get(customer.id, "stripe")
        seen_out = await outbound.mappings.get(customer.id, "stripe")
        await inbound.mappings.save(seen_in.rebased(CustomerData("inbound baseline"), T0))
        racing = asyncio.create_task(outbound.mappings.save(seen_out.rebased(CustomerData("stale"), T0)))
        await asyncio.sleep(0.2)
        assert not racing.done()  # waits on the inbound transaction's row lock
        await inbound.commit()
        with pytest.raises(ConcurrentUpdate):
            await racing
    async with pg_uow_factory() as uow:
        assert (await uow.mappings.get(customer.id, "stripe")).synced == CustomerData("inbound baseline")


async def test_pooled_connections_the_server_closed_are_replaced_without_a_failed_unit_of_work(postgres_url):
    """No pre-ping round trip per checkout: a connection closed by the server (a restart, a
    failover, pg_terminate_backend) is noticed at checkout and replaced."""
    engine = create_engine(postgres_url, pool_size=3)
    try:
        factory = SqlAlchemyUnitOfWorkFactory(engine)

        async def one(n: int) -> None:
            async with factory() as uow:
                await uow.outbox.add(event(n, 0))
                await uow.commit()

        await asyncio.gather(*(one(n) for n in range(1, 4)))  # three pooled connections
        admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'custsync' "
                "AND pid <> pg_backend_pid() AND datname = current_database()"
            )
        finally:
            await admin.close()
        assert killed >= 3
        await asyncio.sleep(0.2)  # the closes reach the client
        await asyncio.gather(*(one(n) for n in range(4, 7)))  # no StorageUnavailable
    finally:
        await engine.dispose()
