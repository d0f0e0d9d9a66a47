"""The Kafka adapter against a real broker: keyed order, at-least-once redelivery, consumer groups,
dead letters, topic provisioning, and records we did not write ourselves."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from adapters.kafka import SYNC_TOPICS, KafkaPublisher, KafkaSubscription, TopicsMissing, ensure_topics
from adapters.kafka.lag import KafkaLag
from adapters.kafka.publisher import MAX_ERROR_BYTES
from adapters.kafka.topics import TopicsNotCreated
from adapters.memory.clock import FakeClock
from application.ports import Delivery, Envelope
from application.sync.consumer import SyncConsumer
from application.sync.groups import SyncGroup
from domain.messages import UndecodableMessage, dead_letter_topic

pytestmark = pytest.mark.integration

WAIT = 30.0  # seconds: generous for a loaded CI machine; a healthy broker answers in well under one
ROUNDS = 300  # and never more fetches than this, whatever the clock says
FAST_REBALANCE = {"heartbeat_interval_ms": 200}  # a member learns of a rebalance on its next heartbeat


def envelopes(topic: str, count: int, keys: int) -> list[Envelope]:
    """``count`` messages spread over ``keys`` keys; the payload is "<key>:<sequence within key>"."""
    seq: dict[str, int] = defaultdict(int)
    out = []
    for i in range(count):
        key = f"customer-{i % keys}"
        out.append(Envelope(topic, key, f"event-{i}", f"{key}:{seq[key]}".encode()))
        seq[key] += 1
    return out


async def collect(*subscriptions: KafkaSubscription, expected: int) -> list[list[Delivery]]:
    """Fetch from all members at once until ``expected`` deliveries arrived in total (or time is up)."""
    got: list[list[Delivery]] = [[] for _ in subscriptions]
    deadline = time.monotonic() + WAIT
    for _ in range(ROUNDS):
        if sum(map(len, got)) >= expected or time.monotonic() > deadline:
            break
        batches = await asyncio.gather(*(s.fetch(100, 0.2) for s in subscriptions))
        for mine, batch in zip(got, batches, strict=True):
            mine.extend(batch)
    return got


async def balanced(*members: KafkaSubscription, partitions: int) -> None:
    """Wait (without fetching) until every member owns a disjoint, non-empty share of the partitions."""
    deadline = time.monotonic() + WAIT
    for _ in range(ROUNDS):
        shares = [m.assignment() for m in members]
        if all(shares) and sum(map(len, shares)) == partitions == len(set().union(*shares)):
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    pytest.fail(f"the group did not balance within {WAIT}s: {[m.assignment() for m in members]}")


def event_ids(deliveries: list[Delivery]) -> list[str]:
    return [d.envelope.event_id for d in deliveries]


async def test_every_message_arrives_once_in_key_order_with_its_event_id(kafka, kafka_topics, kafka_group):
    (topic,) = await kafka_topics.create(partitions=3)
    sent = envelopes(topic, 60, keys=7)
    async with KafkaPublisher(kafka) as publisher:
        await publisher.publish(sent)

    async with KafkaSubscription(kafka, [topic], kafka_group()) as subscription:
        (got,) = await collect(subscription, expected=len(sent))
        assert await subscription.fetch(100, 0.5) == []  # and nothing more

    assert sorted(event_ids(got)) == sorted(e.event_id for e in sent)
    assert {d.envelope for d in got} == set(sent)  # topic, key, event_id (header), payload, no error
    by_key: dict[str, list[Delivery]] = defaultdict(list)
    for d in got:
        by_key[d.envelope.key].append(d)
    for key, deliveries in by_key.items():
        assert [d.envelope.payload for d in deliveries] == [f"{key}:{n}".encode() for n in range(len(deliveries))]
        assert len({d.partition for d in deliveries}) == 1  # one key, one partition
        assert [d.offset for d in deliveries] == sorted(d.offset for d in deliveries)


async def test_what_was_not_committed_is_delivered_again_and_what_was_is_not(kafka, kafka_topics, kafka_group):
    (topic,) = await kafka_topics.create(partitions=1)
    sent = envelopes(topic, 10, keys=1)
    group = kafka_group()
    async with KafkaPublisher(kafka) as publisher:
        await publisher.publish(sent)

    async with KafkaSubscription(kafka, [topic], group) as first:
        (got,) = await collect(first, expected=10)
        await first.commit(got[:4])
    async with KafkaSubscription(kafka, [topic], group) as second:  # a restart: fetches, crashes before commit
        (again,) = await collect(second, expected=6)
    async with KafkaSubscription(kafka, [topic], group) as third:
        (once_more,) = await collect(third, expected=6)
        await third.commit(once_more)
    async with KafkaSubscription(kafka, [topic], group) as fourth:
        leftover = await fourth.fetch(100, 1.0)

    assert event_ids(got) == [e.event_id for e in sent]
    assert event_ids(again) == event_ids(once_more) == [e.event_id for e in sent[4:]]
    assert leftover == []


async def test_the_lag_is_read_per_group_from_the_broker_as_kafka_consumer_groups_reads_it(kafka, kafka_topics, kafka_group):
    inbound, outbound = await kafka_topics.create(partitions=2, count=2)
    base = kafka_group()
    groups = [
        SyncGroup("catalog", base, (inbound,)),
        SyncGroup("stripe", f"{base}.stripe", (outbound,)),
        SyncGroup("salesforce", f"{base}.salesforce", (outbound,)),
    ]
    async with KafkaPublisher(kafka) as publisher:
        await publisher.publish(envelopes(outbound, 6, keys=3) + envelopes(inbound, 2, keys=2))
    lag = KafkaLag(kafka, groups)

    def per_group(read: dict) -> dict[str, int]:
        return {name: sum(n for (g, _, _), n in read.items() if g == name) for name in ("catalog", "stripe", "salesforce")}

    before = await lag.lag()
    assert {(t, p) for _, t, p in before} == {(inbound, 0), (inbound, 1), (outbound, 0), (outbound, 1)}
    assert per_group(before) == {"catalog": 2, "stripe": 6, "salesforce": 6}  # nothing committed: from the beginning

    async with KafkaSubscription(kafka, [outbound], f"{base}.stripe") as stripe:  # Stripe's group takes all six
        (got,) = await collect(stripe, expected=6)
        await stripe.commit(got)
    assert per_group(await lag.lag()) == {"catalog": 2, "stripe": 0, "salesforce": 6}  # Salesforce's is its own


async def test_members_of_one_group_share_the_partitions(kafka, kafka_topics, kafka_group):
    (topic,) = await kafka_topics.create(partitions=4)
    sent = envelopes(topic, 80, keys=20)
    group = kafka_group()
    async with (
        KafkaSubscription(kafka, [topic], group, **FAST_REBALANCE) as a,
        KafkaSubscription(kafka, [topic], group, **FAST_REBALANCE) as b,
    ):
        await balanced(a, b, partitions=4)
        async with KafkaPublisher(kafka) as publisher:
            await publisher.publish(sent)
        got_a, got_b = await collect(a, b, expected=len(sent))

        assert got_a and got_b
        assert {(topic, d.partition) for d in got_a} <= a.assignment()
        assert {(topic, d.partition) for d in got_b} <= b.assignment()
    assert not set(event_ids(got_a)) & set(event_ids(got_b))
    assert sorted(event_ids(got_a) + event_ids(got_b)) == sorted(e.event_id for e in sent)


async def test_committing_after_a_rebalance_took_partitions_away_warns_and_the_new_owner_gets_them(
    kafka, kafka_topics, kafka_group, caplog
):
    (topic,) = await kafka_topics.create(partitions=4)
    sent = envelopes(topic, 40, keys=20)
    group = kafka_group()
    async with KafkaPublisher(kafka) as publisher:
        await publisher.publish(sent)

    async with KafkaSubscription(kafka, [topic], group, **FAST_REBALANCE) as a:
        (fetched,) = await collect(a, expected=len(sent))  # a owns all four partitions, for now
        async with KafkaSubscription(kafka, [topic], group, **FAST_REBALANCE) as b:
            await balanced(a, b, partitions=4)
            with caplog.at_level(logging.WARNING, logger="adapters.kafka.subscription"):
                await a.commit(fetched)  # must not raise: part of this is b's now
            taken = {partition for _, partition in b.assignment()}
            (redelivered,) = await collect(b, expected=sum(d.partition in taken for d in fetched))

    assert "redelivered" in caplog.text
    assert sorted(event_ids(redelivered)) == sorted(event_ids([d for d in fetched if d.partition in taken]))


async def test_a_member_that_overran_its_poll_interval_cannot_commit_and_its_batch_goes_to_the_other(
    kafka, kafka_topics, kafka_group, caplog
):
    (topic,) = await kafka_topics.create(partitions=2)
    sent = envelopes(topic, 20, keys=8)
    group = kafka_group()
    async with (
        KafkaSubscription(kafka, [topic], group, max_poll_interval_ms=500, **FAST_REBALANCE) as slow,
        KafkaSubscription(kafka, [topic], group, **FAST_REBALANCE) as steady,
    ):
        await balanced(slow, steady, partitions=2)
        async with KafkaPublisher(kafka) as publisher:
            await publisher.publish(sent)
        slow_batch, steady_batch = await collect(slow, steady, expected=len(sent))
        await steady.commit(steady_batch)

        await asyncio.sleep(1.5)  # slow handles its batch for longer than its poll interval: it leaves the group
        with caplog.at_level(logging.WARNING, logger="adapters.kafka.subscription"):
            await slow.commit(slow_batch)  # must not raise
        (taken_over,) = await collect(steady, expected=len(slow_batch))

    assert "redelivered" in caplog.text
    assert slow_batch and sorted(event_ids(taken_over)) == sorted(event_ids(slow_batch))


async def test_a_dead_letter_keeps_its_error_in_a_header(kafka, kafka_topics, kafka_group):
    (topic,) = await kafka_topics.create(partitions=1, dead_letters=True)
    dlq = dead_letter_topic(topic)
    letters = [
        Envelope(dlq, "customer-1", "event-1", b"{}", error="ValueError: no such thing"),
        Envelope(dlq, "customer-1", "event-2", b"{}", error="é" * MAX_ERROR_BYTES),  # 2 bytes a character
    ]
    async with KafkaPublisher(kafka) as publisher:
        await publisher.publish(letters)

    async with KafkaSubscription(kafka, [dlq], kafka_group()) as subscription:
        (got,) = await collect(subscription, expected=2)

    assert [d.envelope.error for d in got] == ["ValueError: no such thing", "é" * (MAX_ERROR_BYTES // 2)]
    assert [d.envelope.event_id for d in got] == ["event-1", "event-2"]


async def test_the_consumer_dead_letters_an_undecodable_message_and_commits_it(kafka, kafka_topics, kafka_group):
    (topic,) = await kafka_topics.create(partitions=1, dead_letters=True)
    group = kafka_group()

    class Handler:
        def __init__(self) -> None:
            self.handled: list[bytes] = []

        async def handle(self, payload: bytes) -> None:
            if payload == b"garbage":
                raise UndecodableMessage("not a CustomerChanged")
            self.handled.append(payload)

        async def give_up(self, payload: bytes, error: str) -> None:  # pragma: no cover - not reached
            raise AssertionError("an undecodable message is dead-lettered without giving up")

    handler = Handler()
    async with KafkaPublisher(kafka) as publisher:
        await publisher.publish([Envelope(topic, "k", "e1", b"garbage"), Envelope(topic, "k", "e2", b"fine")])
        async with KafkaSubscription(kafka, [topic], group) as source:
            consumer = SyncConsumer(source, publisher, {topic: handler}, FakeClock())
            done, deadline = 0, time.monotonic() + WAIT
            for _ in range(ROUNDS):
                if done >= 2 or time.monotonic() > deadline:
                    break
                done += await consumer.run_once(asyncio.Event(), timeout=0.2)
        async with KafkaSubscription(kafka, [topic], group) as restarted:
            leftover = await restarted.fetch(100, 1.0)
        async with KafkaSubscription(kafka, [dead_letter_topic(topic)], kafka_group()) as dead_letters:
            (letters,) = await collect(dead_letters, expected=1)

    assert handler.handled == [b"fine"]
    assert leftover == []  # both were committed
    assert [(d.envelope.event_id, d.envelope.payload, d.envelope.error) for d in letters] == [
        ("e1", b"garbage", "not a CustomerChanged")
    ]


async def test_ensure_topics_creates_what_is_missing_with_the_partition_count_and_is_idempotent(kafka, kafka_topics):
    names = [kafka_topics.unique(), kafka_topics.unique(".dlq")]

    assert await ensure_topics(kafka, partitions=5, topics=names) == names
    assert await ensure_topics(kafka, partitions=5, topics=names) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    try:
        await admin.start()
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    assert {d["topic"]: len(d["partitions"]) for d in described} == dict.fromkeys(names, 5)


async def test_existing_topics_of_another_shape_are_left_as_they_are_and_said(kafka, kafka_topics, caplog):
    """Re-running `custsync topics` with other counts changes nothing it cannot change safely (fewer
    partitions is impossible, more would move customers between partitions), and says so."""
    [name] = await kafka_topics.create(1, partitions=3)

    with caplog.at_level(logging.WARNING, logger="adapters.kafka.topics"):
        assert await ensure_topics(kafka, partitions=5, replication_factor=2, topics=[name]) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"topic {name} has 3 partitions, not the 5 configured; left as it is",
        f"topic {name} has 1 replica(s), not the 2 configured; left as it is (kafka-reassign-partitions.sh changes it)",
    ]


async def test_a_replication_factor_beyond_the_brokers_is_refused_naming_it(kafka, kafka_topics):
    with pytest.raises(TopicsNotCreated, match=r"replication factor 3\): InvalidReplicationFactorError"):
        await ensure_topics(kafka, partitions=1, replication_factor=3, topics=[kafka_topics.unique()])


def test_the_sync_topics_are_the_two_topics_and_their_dead_letter_topics():
    assert SYNC_TOPICS == ("sync.outbound", "sync.inbound", "sync.outbound.dlq", "sync.inbound.dlq")


async def test_a_record_without_key_or_headers_still_becomes_a_delivery(kafka, kafka_topics, kafka_group):
    (topic,) = await kafka_topics.create(partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"written by someone else")
        await producer.send_and_wait(topic, None, key=b"customer-9")  # a tombstone
    finally:
        await producer.stop()

    async with KafkaSubscription(kafka, [topic], kafka_group()) as subscription:
        (got,) = await collect(subscription, expected=2)

    assert [d.envelope for d in got] == [
        Envelope(topic, "", f"{topic}:0:0", b"written by someone else"),
        Envelope(topic, "customer-9", f"{topic}:0:1", b""),
    ]


async def test_subscribing_to_a_missing_topic_fails_at_once(kafka, kafka_topics, kafka_group):
    subscription = KafkaSubscription(kafka, [kafka_topics.unique()], kafka_group())
    with pytest.raises(TopicsMissing, match="custsync topics"):
        await asyncio.wait_for(subscription.start(), WAIT)
