"""The worker loop: in order, at least once, retried with backoff, dead-lettered, never stuck."""

import asyncio

from adapters.memory.bus import InMemoryBroker, InMemoryPublisher, InMemorySubscription
from adapters.memory.database import InMemoryDatabase
from application.errors import (
    BrokerUnavailable,
    IntegrationAuthError,
    PermanentIntegrationError,
    RetryableIntegrationError,
    StorageUnavailable,
)
from application.ports import Envelope
from application.sync.consumer import RetryPolicy, SyncConsumer
from domain.messages import UndecodableMessage

TOPIC = "sync.outbound"


class RecordingHandler:
    """A topic handler that fails as scripted, per payload."""

    def __init__(self, script=None):
        self.script = dict(script or {})
        self.handled: list[bytes] = []
        self.given_up: list[tuple[bytes, str]] = []

    async def handle(self, payload):
        failures = self.script.get(payload)
        if failures:
            self.script[payload] = failures[1:]
            raise failures[0]
        self.handled.append(payload)

    async def give_up(self, payload, error):
        self.given_up.append((payload, error))


RETRY = RetryPolicy(max_attempts=3, base_delay=1, max_delay=8)


async def setup(clock, handler, payloads, retry=RETRY, db=None):
    broker = InMemoryBroker(partitions=1)
    await broker.append([Envelope(TOPIC, "k", f"e{i}", p) for i, p in enumerate(payloads)])
    consumer = SyncConsumer(
        InMemorySubscription(broker, [TOPIC]),
        InMemoryPublisher(broker),
        {TOPIC: handler},
        clock,
        retry,
        uow_factory=(db or InMemoryDatabase()).unit_of_work,
    )
    return broker, consumer


async def test_messages_are_handled_in_order_and_committed(clock):
    handler = RecordingHandler()
    broker, consumer = await setup(clock, handler, [b"a", b"b", b"c"])
    assert await consumer.run_once(asyncio.Event()) == 3
    assert handler.handled == [b"a", b"b", b"c"]
    assert broker.committed[("custsync-worker", TOPIC, 0)] == 3


async def test_a_retryable_failure_is_retried_in_place_with_growing_jittered_backoff(clock):
    handler = RecordingHandler({b"a": [RetryableIntegrationError("429"), RetryableIntegrationError("500")]})
    _, consumer = await setup(clock, handler, [b"a", b"b"])
    await consumer.run_once(asyncio.Event())
    assert handler.handled == [b"a", b"b"]  # b never overtook a
    assert len(clock.slept) == 2 and 0 <= clock.slept[0] <= 1 and 0 <= clock.slept[1] <= 2


async def test_retry_after_is_honoured(clock):
    handler = RecordingHandler({b"a": [RetryableIntegrationError("429", retry_after=5)]})
    _, consumer = await setup(clock, handler, [b"a"])
    await consumer.run_once(asyncio.Event())
    assert clock.slept == [5]


async def test_a_transient_failure_is_waited_out_however_long_it_lasts_and_never_dead_lettered(clock):
    outage = [RetryableIntegrationError("503")] * 40 + [StorageUnavailable("database restarting")] * 20
    handler = RecordingHandler({b"a": outage})
    broker, consumer = await setup(clock, handler, [b"a", b"b"])  # max_attempts=3: only for the unexpected
    assert await consumer.run_once(asyncio.Event()) == 2
    assert handler.handled == [b"a", b"b"]
    assert broker.messages(f"{TOPIC}.dlq") == [] and handler.given_up == []
    assert len(clock.slept) == 60 and max(clock.slept) <= 8  # capped backoff (max_delay=8 here)


async def test_a_permanent_failure_is_dead_lettered_at_once(clock):
    handler = RecordingHandler({b"a": [PermanentIntegrationError("invalid email")]})
    broker, consumer = await setup(clock, handler, [b"a"])
    await consumer.run_once(asyncio.Event())
    assert clock.slept == []
    assert [m.error for m in broker.messages(f"{TOPIC}.dlq")] == ["PermanentIntegrationError: invalid email"]


async def test_an_undecodable_message_goes_to_the_dead_letter_topic(clock):
    handler = RecordingHandler({b"junk": [UndecodableMessage("not JSON")]})
    broker, consumer = await setup(clock, handler, [b"junk", b"ok"])
    await consumer.run_once(asyncio.Event())
    assert handler.handled == [b"ok"]
    assert [m.payload for m in broker.messages(f"{TOPIC}.dlq")] == [b"junk"]


async def test_refused_credentials_pause_instead_of_burning_through_the_queue(clock):
    handler = RecordingHandler({b"a": [IntegrationAuthError("bad key")] * 3})
    broker, consumer = await setup(clock, handler, [b"a"])
    await consumer.run_once(asyncio.Event())
    assert handler.handled == [b"a"]  # handled once the key works again
    assert clock.slept == [60.0] * 3
    assert broker.messages(f"{TOPIC}.dlq") == []


async def test_stopping_mid_retry_leaves_the_message_uncommitted_for_redelivery(clock):
    handler = RecordingHandler({b"a": [RetryableIntegrationError("500")]})
    broker, consumer = await setup(clock, handler, [b"a"])
    stopping = asyncio.Event()
    stopping.set()
    assert await consumer.run_once(stopping) == 0
    assert broker.committed[("custsync-worker", TOPIC, 0)] == 0
    restarted = SyncConsumer(
        InMemorySubscription(broker, [TOPIC]),
        InMemoryPublisher(broker),
        {TOPIC: handler},
        clock,
        uow_factory=InMemoryDatabase().unit_of_work,
    )
    assert await restarted.run_once(asyncio.Event()) == 1
    assert handler.handled == [b"a"]


async def test_an_unexpected_error_is_retried_then_dead_lettered_rather_than_crashing_the_worker(clock):
    handler = RecordingHandler({b"a": [KeyError("bug")] * 3})
    broker, consumer = await setup(clock, handler, [b"a", b"b"])
    await consumer.run_once(asyncio.Event())
    assert handler.handled == [b"b"]
    assert "KeyError" in broker.messages(f"{TOPIC}.dlq")[0].error


async def test_a_dead_letter_is_kept_in_the_store_with_its_original_topic_and_error(clock, db):
    handler = RecordingHandler({b"a": [PermanentIntegrationError("invalid email")]})
    broker, consumer = await setup(clock, handler, [b"a", b"b"], db=db)
    await consumer.run_once(asyncio.Event())
    async with db.unit_of_work() as uow:
        [letter] = await uow.dead_letters.list(10)
    assert (letter.topic, letter.key, letter.event_id, letter.payload) == (TOPIC, "k", "e0", b"a")
    assert (letter.error, letter.created_at, letter.replayed_at) == (
        "PermanentIntegrationError: invalid email",
        clock.now(),
        None,
    )
    assert [m.event_id for m in broker.messages(f"{TOPIC}.dlq")] == ["e0"]  # and still published for watchers


async def test_the_same_message_dying_twice_is_one_dead_letter(clock, db):
    handler = RecordingHandler({b"a": [UndecodableMessage("first"), UndecodableMessage("second")]})
    broker, consumer = await setup(clock, handler, [b"a"], db=db)
    await consumer.run_once(asyncio.Event())
    await broker.append([Envelope(TOPIC, "k", "e0", b"a")])  # redelivered, e.g. after a crash before the commit
    await consumer.run_once(asyncio.Event())
    async with db.unit_of_work() as uow:
        assert [d.error for d in await uow.dead_letters.list(10, include_replayed=True)] == ["second"]


class HistoryCannotBeWritten(RecordingHandler):
    """Recording the death in the history fails too (a payload the database cannot store)."""

    async def give_up(self, payload, error):
        raise ValueError("invalid byte sequence for encoding UTF8: 0x00")


async def test_a_message_whose_death_cannot_be_recorded_is_still_dead_lettered_and_the_worker_goes_on(clock):
    handler = HistoryCannotBeWritten({b"poison": [PermanentIntegrationError("refused")]})
    broker, consumer = await setup(clock, handler, [b"poison", b"next"])
    assert await consumer.run_once(asyncio.Event()) == 2
    assert [m.payload for m in broker.messages(f"{TOPIC}.dlq")] == [b"poison"]
    assert handler.handled == [b"next"]


class DatabaseDownWhileDying(RecordingHandler):
    """The history note and the dead-letter store meet a database outage, then it ends."""

    def __init__(self, script, outage: int):
        super().__init__(script)
        self.outage = outage

    async def give_up(self, payload, error):
        if self.outage:
            self.outage -= 1
            raise StorageUnavailable("connection refused")
        await super().give_up(payload, error)


async def test_a_dead_letter_waits_for_the_database_instead_of_crashing_the_worker(clock, db):
    handler = DatabaseDownWhileDying({b"a": [PermanentIntegrationError("invalid email")]}, outage=4)
    _broker, consumer = await setup(clock, handler, [b"a", b"b"], db=db)
    assert await consumer.run_once(asyncio.Event()) == 2
    assert handler.given_up == [(b"a", "PermanentIntegrationError: invalid email")] and handler.handled == [b"b"]
    async with db.unit_of_work() as uow:
        assert [d.event_id for d in await uow.dead_letters.list(10)] == ["e0"]
    assert len(clock.slept) == 4


class UnreliablePublisher(InMemoryPublisher):
    def __init__(self, broker, failures: int):
        super().__init__(broker)
        self.failures = failures

    async def publish(self, envelopes):
        if self.failures:
            self.failures -= 1
            raise BrokerUnavailable("broker down")
        await super().publish(envelopes)


async def test_a_dead_letter_waits_for_the_broker_and_is_stored_once(clock, db):
    broker = InMemoryBroker(partitions=1)
    await broker.append([Envelope(TOPIC, "k", "e0", b"junk")])
    handler = RecordingHandler({b"junk": [UndecodableMessage("not JSON")]})
    consumer = SyncConsumer(
        InMemorySubscription(broker, [TOPIC]),
        UnreliablePublisher(broker, failures=3),
        {TOPIC: handler},
        clock,
        uow_factory=db.unit_of_work,
    )
    assert await consumer.run_once(asyncio.Event()) == 1
    assert [m.payload for m in broker.messages(f"{TOPIC}.dlq")] == [b"junk"]
    async with db.unit_of_work() as uow:
        assert len(await uow.dead_letters.list(10)) == 1


class FailingSource(InMemorySubscription):
    """A subscription whose broker is away for a while: fetches and commits fail meanwhile."""

    def __init__(self, broker, topics, fetch_failures=0, commit_failures=0):
        super().__init__(broker, topics)
        self.fetch_failures, self.commit_failures = fetch_failures, commit_failures

    async def fetch(self, max_messages, timeout):
        if self.fetch_failures:
            self.fetch_failures -= 1
            raise BrokerUnavailable("fetch: broker down")
        return await super().fetch(max_messages, timeout)

    async def commit(self, deliveries):
        if self.commit_failures:
            self.commit_failures -= 1
            raise BrokerUnavailable("commit: broker down")
        await super().commit(deliveries)


async def test_the_loop_outlives_a_broker_outage_and_commits_once_it_is_back(clock):
    broker = InMemoryBroker(partitions=1)
    await broker.append([Envelope(TOPIC, "k", "e0", b"a")])
    handler = RecordingHandler()
    source = FailingSource(broker, [TOPIC], fetch_failures=3, commit_failures=2)
    consumer = SyncConsumer(source, InMemoryPublisher(broker), {TOPIC: handler}, clock)
    stopping = asyncio.Event()
    for _ in range(3):
        assert await consumer.run_once(stopping) == 0  # the fetch fails, the loop goes on
    assert await consumer.run_once(stopping) == 0  # handled, but the commit fails: kept
    assert handler.handled == [b"a"] and broker.committed[("custsync-worker", TOPIC, 0)] == 0
    assert await consumer.run_once(stopping) == 0  # fails again
    assert await consumer.run_once(stopping) == 1  # and the same offset is committed at last
    assert broker.committed[("custsync-worker", TOPIC, 0)] == 1
    assert handler.handled == [b"a"]  # never handled twice by this member


class Gate(RecordingHandler):
    """Payloads starting with ``wait`` fail with an outage until the gate opens."""

    def __init__(self):
        super().__init__()
        self.open = asyncio.Event()
        self.attempts = 0

    async def handle(self, payload):
        if payload.startswith(b"wait") and not self.open.is_set():
            self.attempts += 1
            raise RetryableIntegrationError("503 Service Unavailable")
        self.handled.append(payload)


async def test_a_waiting_key_holds_up_only_itself_and_the_commit_point_waits_for_it():
    from adapters.clock import SystemClock

    clock = SystemClock()  # real (short) waits: a lane in backoff must not spin the loop
    broker = InMemoryBroker(partitions=1)  # one partition: the keys share it
    await broker.append([Envelope(TOPIC, "slow", "s0", b"wait-1"), Envelope(TOPIC, "slow", "s1", b"after-wait")])
    await broker.append([Envelope(TOPIC, "fast", f"f{i}", f"fast-{i}".encode()) for i in range(5)])
    source = InMemorySubscription(broker, [TOPIC])
    handler = Gate()
    consumer = SyncConsumer(
        source, InMemoryPublisher(broker), {TOPIC: handler}, clock, RetryPolicy(base_delay=0.02, max_delay=0.02)
    )
    stopping = asyncio.Event()
    running = asyncio.create_task(consumer.run(stopping))
    try:
        for _ in range(200):  # bounded: until the fast key is done
            await asyncio.sleep(0.01)
            if len(handler.handled) == 5 and handler.attempts > 2:
                break
        assert handler.handled == [f"fast-{i}".encode() for i in range(5)]  # not held up by the slow key
        assert consumer.waiting() == {(TOPIC, 0): "RetryableIntegrationError: 503 Service Unavailable"}
        assert broker.committed[("custsync-worker", TOPIC, 0)] == 0  # offsets 2..6 are done, 0 is not
        assert not source.paused  # 7 uncommitted: far from max_buffered
        handler.open.set()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if broker.committed[("custsync-worker", TOPIC, 0)] == 7:
                break
        assert handler.handled[-2:] == [b"wait-1", b"after-wait"]  # in order within the key
        assert broker.committed[("custsync-worker", TOPIC, 0)] == 7 and consumer.waiting() == {}
        assert broker.messages(f"{TOPIC}.dlq") == []
    finally:
        stopping.set()
        await asyncio.wait_for(running, 5)


async def test_a_partition_holding_max_buffered_uncommitted_is_paused_and_paused_again_after_a_rebalance():
    from adapters.clock import SystemClock

    broker = InMemoryBroker(partitions=1)
    await broker.append([Envelope(TOPIC, "k", "s0", b"wait-1")])
    await broker.append([Envelope(TOPIC, f"other{i}", f"o{i}", f"o{i}".encode()) for i in range(5)])
    source = InMemorySubscription(broker, [TOPIC])
    handler = Gate()
    consumer = SyncConsumer(
        source,
        InMemoryPublisher(broker),
        {TOPIC: handler},
        SystemClock(),
        RetryPolicy(base_delay=0.02, max_delay=0.02),
        max_buffered=4,
    )
    stopping = asyncio.Event()
    running = asyncio.create_task(consumer.run(stopping))
    try:
        for _ in range(500):
            await asyncio.sleep(0.01)
            if (TOPIC, 0) in source.paused:
                break
        assert (TOPIC, 0) in source.paused
        source.paused.clear()  # a rebalance took the partition away and gave it back, unpaused
        for _ in range(500):  # bounded: a turn of the loop is at most one fetch timeout (0.5 s)
            await asyncio.sleep(0.01)
            if (TOPIC, 0) in source.paused:
                break
        assert (TOPIC, 0) in source.paused
        handler.open.set()
        for _ in range(500):
            await asyncio.sleep(0.01)
            if broker.committed[("custsync-worker", TOPIC, 0)] == 6 and not source.paused:
                break
        assert broker.committed[("custsync-worker", TOPIC, 0)] == 6 and not source.paused
    finally:
        handler.open.set()
        stopping.set()
        await asyncio.wait_for(running, 5)


class Overlap(RecordingHandler):
    """Sleeps in every delivery; records how many ran at once, overall and per key."""

    def __init__(self, hold=0.01):
        super().__init__()
        self.hold, self.now, self.peak, self.running_keys, self.same_key_overlap = hold, 0, 0, set(), 0

    async def handle(self, payload):
        key = payload.split(b":")[0]
        if key in self.running_keys:
            self.same_key_overlap += 1
        self.running_keys.add(key)
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(self.hold)
        finally:
            self.now -= 1
            self.running_keys.discard(key)
        self.handled.append(payload)


async def test_different_keys_run_concurrently_up_to_the_bound_and_one_key_strictly_in_order(clock):
    broker = InMemoryBroker(partitions=2)
    await broker.append([Envelope(TOPIC, f"k{k}", f"e{k}-{i}", f"k{k}:{i}".encode()) for i in range(4) for k in range(12)])
    handler = Overlap()
    consumer = SyncConsumer(
        InMemorySubscription(broker, [TOPIC]),
        InMemoryPublisher(broker),
        {TOPIC: handler},
        clock,
        concurrency=5,
    )
    assert await consumer.run_once(asyncio.Event()) == 48
    assert handler.peak == 5  # bounded, and used
    assert handler.same_key_overlap == 0
    for k in range(12):
        assert [p for p in handler.handled if p.startswith(f"k{k}:".encode())] == [f"k{k}:{i}".encode() for i in range(4)]
    assert sum(broker.committed[("custsync-worker", TOPIC, p)] for p in range(2)) == 48


async def test_offsets_are_committed_only_up_to_the_lowest_unfinished_delivery(clock):
    class Slow(RecordingHandler):
        def __init__(self):
            super().__init__()
            self.release = asyncio.Event()

        async def handle(self, payload):
            if payload == b"slow":
                await self.release.wait()
            self.handled.append(payload)

    broker = InMemoryBroker(partitions=1)
    await broker.append([Envelope(TOPIC, "a", "e0", b"x"), Envelope(TOPIC, "b", "e1", b"slow")])
    await broker.append([Envelope(TOPIC, f"c{i}", f"e{i + 2}", b"y") for i in range(3)])
    handler = Slow()
    consumer = SyncConsumer(InMemorySubscription(broker, [TOPIC]), InMemoryPublisher(broker), {TOPIC: handler}, clock)
    consumer._dispatch(await consumer._fetch(asyncio.Event(), 0), asyncio.Event())
    for _ in range(100):  # bounded: until everything but the slow one is done
        await asyncio.sleep(0)
        if len(handler.handled) == 4:
            break
    assert await consumer._commit() == 1  # offset 0 only: offset 1 is still in hand, 2..4 wait behind it
    assert broker.committed[("custsync-worker", TOPIC, 0)] == 1
    handler.release.set()
    await consumer._settle_lanes()
    assert await consumer._commit() == 4
    assert broker.committed[("custsync-worker", TOPIC, 0)] == 5


class Coalescer(RecordingHandler):
    """State-based: a later ``push`` stands for an earlier one; a ``keep`` is never stood for."""

    def supersedes(self, later, earlier):
        return later.startswith(b"push") and earlier.startswith(b"push")


async def test_a_run_of_superseded_deliveries_of_one_key_costs_one_handling(clock):
    broker = InMemoryBroker(partitions=1)
    payloads = [b"push-1", b"push-2", b"keep-3", b"push-4", b"push-5", b"push-6"]
    await broker.append([Envelope(TOPIC, "k", f"e{i}", p) for i, p in enumerate(payloads)])
    await broker.append([Envelope(TOPIC, "other", "o1", b"push-other")])
    handler = Coalescer()
    consumer = SyncConsumer(InMemorySubscription(broker, [TOPIC]), InMemoryPublisher(broker), {TOPIC: handler}, clock)
    assert await consumer.run_once(asyncio.Event()) == 7  # every offset committed
    assert sorted(handler.handled) == sorted([b"push-2", b"keep-3", b"push-6", b"push-other"])
    assert [p for p in handler.handled if p != b"push-other"] == [b"push-2", b"keep-3", b"push-6"]
    assert consumer.coalesced == 3


async def test_a_foreign_record_with_nul_in_its_key_and_id_is_dead_lettered_with_storable_text(clock, db):
    broker = InMemoryBroker(partitions=1)
    await broker.append([Envelope(TOPIC, "k\x00", "e\x00vil", b"junk")])
    handler = RecordingHandler({b"junk": [UndecodableMessage("not JSON")]})
    consumer = SyncConsumer(
        InMemorySubscription(broker, [TOPIC]), InMemoryPublisher(broker), {TOPIC: handler}, clock, uow_factory=db.unit_of_work
    )
    assert await consumer.run_once(asyncio.Event()) == 1
    async with db.unit_of_work() as uow:
        [letter] = await uow.dead_letters.list(10)
    assert (letter.key, letter.event_id) == ("k\\x00", "e\\x00vil")


async def test_keys_waiting_out_failures_do_not_take_every_slot_from_the_others():
    from adapters.clock import SystemClock

    broker = InMemoryBroker(partitions=1)
    await broker.append([Envelope(TOPIC, "a", "a0", b"wait-a"), Envelope(TOPIC, "b", "b0", b"wait-b")])
    await broker.append([Envelope(TOPIC, "c", "c0", b"healthy")])
    handler = Gate()
    consumer = SyncConsumer(
        InMemorySubscription(broker, [TOPIC]),
        InMemoryPublisher(broker),
        {TOPIC: handler},
        SystemClock(),
        RetryPolicy(base_delay=0.05, max_delay=0.05),
        concurrency=2,
    )
    stopping = asyncio.Event()
    running = asyncio.create_task(consumer.run(stopping))
    try:
        for _ in range(300):  # bounded
            await asyncio.sleep(0.01)
            if handler.handled:
                break
        assert handler.handled == [b"healthy"]  # not starved by the two keys in backoff
        assert handler.attempts >= 2
    finally:
        handler.open.set()
        stopping.set()
        await asyncio.wait_for(running, 5)


async def test_a_delivery_in_backoff_stops_retrying_once_its_partition_went_to_another_member():
    from adapters.clock import SystemClock

    class Revocable(InMemorySubscription):
        revoked = False

        def assignment(self):
            return set() if self.revoked else super().assignment()

    broker = InMemoryBroker(partitions=1)
    await broker.append([Envelope(TOPIC, "a", "a0", b"wait-a")])
    source = Revocable(broker, [TOPIC])
    handler = Gate()
    consumer = SyncConsumer(
        source, InMemoryPublisher(broker), {TOPIC: handler}, SystemClock(), RetryPolicy(base_delay=0.02, max_delay=0.02)
    )
    stopping = asyncio.Event()
    running = asyncio.create_task(consumer.run(stopping))
    try:
        for _ in range(300):
            await asyncio.sleep(0.01)
            if handler.attempts >= 2:
                break
        source.revoked = True  # a rebalance gave the partition to another member
        for _ in range(300):
            await asyncio.sleep(0.01)
            if not consumer.waiting():
                break
        attempts = handler.attempts
        await asyncio.sleep(0.2)
        assert handler.attempts == attempts and consumer.waiting() == {}  # theirs now: no more retries here
        assert broker.committed[("custsync-worker", TOPIC, 0)] == 0 and handler.handled == []
    finally:
        handler.open.set()
        stopping.set()
        await asyncio.wait_for(running, 5)
