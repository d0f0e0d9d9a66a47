"""The worker loop: in order, at least once, retried with backoff, dead-lettered, never stuck."""

import asyncio

from adapters.memory.bus import InMemoryBroker, InMemoryPublisher, InMemorySubscription
from adapters.memory.database import InMemoryDatabase
from application.errors import IntegrationAuthError, PermanentIntegrationError, RetryableIntegrationError
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


async def setup(clock, handler, payloads, retry=RetryPolicy(max_attempts=3, base_delay=1, max_delay=8), db=None):
    broker = InMemoryBroker(partitions=1)
    await broker.append([Envelope(TOPIC, "k", f"e{i}", p) for i, p in enumerate(payloads)])
    consumer = SyncConsumer(
        InMemorySubscription(broker, [TOPIC]), InMemoryPublisher(broker), {TOPIC: handler}, clock, retry,
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


async def test_retries_are_bounded_then_the_message_is_dead_lettered_and_the_partition_moves_on(clock):
    handler = RecordingHandler({b"a": [RetryableIntegrationError("500")] * 10})
    broker, consumer = await setup(clock, handler, [b"a", b"b"])
    await consumer.run_once(asyncio.Event())
    assert handler.handled == [b"b"]
    [dead] = broker.messages(f"{TOPIC}.dlq")
    assert (dead.payload, dead.event_id) == (b"a", "e0") and "500" in dead.error
    assert handler.given_up == [(b"a", "RetryableIntegrationError: 500")]
    assert len(clock.slept) == 2  # three attempts, two pauses


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
        InMemorySubscription(broker, [TOPIC]), InMemoryPublisher(broker), {TOPIC: handler}, clock,
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
    assert (letter.error, letter.created_at, letter.replayed_at) == ("PermanentIntegrationError: invalid email", clock.now(), None)
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
