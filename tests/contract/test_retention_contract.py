"""Retention's storage port on every adapter: what a prune deletes (and never), in bounded batches,
and what scrubbing a deleted customer rewrites (and leaves alone)."""

from __future__ import annotations

from datetime import timedelta

import msgspec
from sqlalchemy import select

from adapters.postgres.tables import outbox
from adapters.postgres.unit_of_work import SqlAlchemyUnitOfWorkFactory
from application.ports import Envelope
from domain.customer import CustomerData
from domain.mapping import CreateIntent, ExternalMapping, FieldWrite, SentValue
from domain.messages import (
    INBOUND_TOPIC,
    OUTBOUND_TOPIC,
    REJECTED_WEBHOOK_TOPIC,
    ChangeKind,
    CustomerChanged,
    ExternalChange,
    ExternalCustomer,
    decode,
    encode,
)
from domain.ownership import Claim
from domain.sync import Direction, Operation, SyncRecord, SyncStatus
from tests.contract.test_storage_contract import T0

DAY = timedelta(days=1)
CUTOFF = T0 + 30 * DAY  # "older than" = before this
OLD, RECENT = T0 + DAY, CUTOFF + DAY


def change(customer_id: int, n: int, kind: ChangeKind = ChangeKind.UPDATED, data: CustomerData | None = None) -> CustomerChanged:
    return CustomerChanged(
        event_id=f"e-{customer_id}-{n}", customer_id=customer_id, kind=kind, version=n + 1, data=data, occurred_at=T0
    )


async def publish(uow_factory, events: list[CustomerChanged], at) -> None:
    async with uow_factory() as uow:
        for e in events:
            await uow.outbox.add(e)
        await uow.commit()
    async with uow_factory() as uow:
        pending = await uow.relay.claim(1000)
        await uow.relay.mark_published([p.position for p in pending if p.event in events], at)
        await uow.commit()


async def stored_outbox(uow_factory) -> list[CustomerChanged]:
    """Every event the outbox holds, published or not, in order (no port reads published ones)."""
    if isinstance(uow_factory, SqlAlchemyUnitOfWorkFactory):
        async with uow_factory.engine.connect() as connection:
            rows = await connection.execute(select(outbox.c.payload).order_by(outbox.c.position))
            return [msgspec.convert(row.payload, CustomerChanged, strict=False) for row in rows]
    return [event for _, (event, _) in sorted(uow_factory.__self__.tables.outbox.items())]


async def prune_until_done(uow_factory, prune: str, before, limit: int) -> list[int]:
    counts = []
    while True:
        async with uow_factory() as uow:
            counts.append(await getattr(uow.retention, prune)(before, limit))
            await uow.commit()
        if counts[-1] < limit:
            return counts


# -- pruning -------------------------------------------------------------------------------------


async def test_only_events_published_before_the_cutoff_go_never_one_waiting_to_be_published(uow_factory):
    old, recent, waiting = change(1, 0), change(1, 1), change(1, 2)
    await publish(uow_factory, [old], OLD)
    await publish(uow_factory, [recent], RECENT)
    async with uow_factory() as uow:
        await uow.outbox.add(waiting)  # committed long ago, never published
        await uow.commit()
    assert await prune_until_done(uow_factory, "prune_outbox", CUTOFF, 10) == [1]
    assert [e.event_id for e in await stored_outbox(uow_factory)] == [recent.event_id, waiting.event_id]


async def test_a_prune_deletes_at_most_its_limit_oldest_first(uow_factory):
    events = [change(1, n) for n in range(5)]
    for n, event in enumerate(events):
        await publish(uow_factory, [event], OLD + n * timedelta(seconds=1))
    assert await prune_until_done(uow_factory, "prune_outbox", CUTOFF, 2) == [2, 2, 1]
    async with uow_factory() as uow:
        for n in range(5):
            await uow.inbox.add("stripe", f"evt_{n}", OLD + n * timedelta(seconds=1))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.retention.prune_inbox(CUTOFF, 2) == 2
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.inbox.seen_many("stripe", [f"evt_{n}" for n in range(5)]) == {"evt_2", "evt_3", "evt_4"}


async def test_inbox_entries_older_than_the_cutoff_go_and_younger_ones_still_drop_redeliveries(uow_factory):
    async with uow_factory() as uow:
        await uow.inbox.add("stripe", "evt_old", OLD)
        await uow.inbox.add("stripe", "evt_new", RECENT)
        await uow.commit()
    assert await prune_until_done(uow_factory, "prune_inbox", CUTOFF, 10) == [1]
    async with uow_factory() as uow:
        assert await uow.inbox.seen_many("stripe", ["evt_old", "evt_new"]) == {"evt_new"}


def record(event_id: str, customer_id: int | None, status: SyncStatus, at, system: str = "stripe") -> SyncRecord:
    pending = SyncRecord.pending(event_id, customer_id, Direction.OUTBOUND, system, Operation.UPDATE, at)
    if status is SyncStatus.SUCCEEDED:
        return pending.succeeded(at)
    if status in (SyncStatus.RETRYING, SyncStatus.DEAD):
        return pending.failed(at, "boom", dead=status is SyncStatus.DEAD)
    return pending


async def test_only_succeeded_records_older_than_the_cutoff_go(uow_factory):
    kept = [
        record("recent", 1, SyncStatus.SUCCEEDED, RECENT),
        record("pending", 1, SyncStatus.PENDING, OLD),
        # A failure, and a success after it of the same link: were the success deleted, the failure
        # would be the link's newest record and GET /customers/2 would say "dead" again.
        record("dead", 2, SyncStatus.DEAD, OLD),
        record("after-dead", 2, SyncStatus.SUCCEEDED, OLD),
        record("retrying", 3, SyncStatus.RETRYING, OLD),
        record("after-retrying", 3, SyncStatus.SUCCEEDED, OLD),
    ]
    gone = [record("old", 1, SyncStatus.SUCCEEDED, OLD), record("no-customer", None, SyncStatus.SUCCEEDED, OLD)]
    # A success before a failure, after a failure of another system, or not its link's newest, goes.
    before_a_failure = [record("before-dead", 4, SyncStatus.SUCCEEDED, OLD)]
    failures = [record("dead-4", 4, SyncStatus.DEAD, OLD), record("dead-5", 5, SyncStatus.DEAD, OLD)]
    other_system = [record("elsewhere", 4, SyncStatus.SUCCEEDED, OLD, system="salesforce")]
    not_newest, newest = record("after-dead-5", 5, SyncStatus.SUCCEEDED, OLD), record("newest-5", 5, SyncStatus.SUCCEEDED, OLD)
    async with uow_factory() as uow:
        for r in gone + before_a_failure + kept + failures + other_system + [not_newest, newest]:
            await uow.sync_records.save(r)
        await uow.commit()
    assert await prune_until_done(uow_factory, "prune_sync_records", CUTOFF, 2) == [2, 2, 1]
    async with uow_factory() as uow:
        for r in kept + failures + [newest]:
            assert await uow.sync_records.get(r.event_id, r.system, r.direction) == r, r.event_id
        for r in gone + before_a_failure + other_system + [not_newest]:
            assert await uow.sync_records.get(r.event_id, r.system, r.direction) is None, r.event_id


async def test_only_dead_letters_replayed_before_the_cutoff_go_never_one_waiting(uow_factory):
    async with uow_factory() as uow:
        letters = [await uow.dead_letters.add(Envelope(OUTBOUND_TOPIC, "1", f"e{n}", b"{}", "boom"), T0) for n in range(3)]
        await uow.commit()
    async with uow_factory() as uow:
        await uow.dead_letters.mark_replayed(letters[0], OLD)
        await uow.dead_letters.mark_replayed(letters[1], RECENT)
        await uow.commit()
    assert await prune_until_done(uow_factory, "prune_dead_letters", CUTOFF, 10) == [1]
    async with uow_factory() as uow:
        assert [d.id for d in await uow.dead_letters.list(10, include_replayed=True)] == [letters[2].id, letters[1].id]


# -- scrubbing -----------------------------------------------------------------------------------


def rejected_webhook(external_id: str, email: str) -> bytes:
    return msgspec.json.encode(
        {
            "id": f"evt_r_{external_id}",
            "object": "event",
            "type": "customer.updated",
            "created": 1767225600,
            "data": {
                "object": {
                    "id": external_id,
                    "object": "customer",
                    "email": email,
                    "name": "Someone",
                    "address": {"line1": "12 Rue X"},
                    "metadata": [],
                },
                "previous_attributes": {"email": "previous@example.com"},
            },
        }
    )


async def person(uow_factory, name: str, email: str, external_id: str, *, deleted: bool) -> int:
    """A customer with everything sync keeps of it: events, a link, a create intent, dead letters
    of each kind, a history whose error quotes its email."""
    data = CustomerData(name, email)
    async with uow_factory() as uow:
        customer = await uow.customers.add(data, T0)
        if deleted:
            await uow.customers.save(customer := customer.tombstone(T0 + timedelta(seconds=1)))
        await uow.mappings.save(
            ExternalMapping(
                customer_id=customer.id,
                system="stripe",
                external_id=external_id,
                synced=data,
                synced_version=customer.version,
                synced_at=T0,
                external_writes={"email": FieldWrite(f"old.{email}", T0)},
                sent={"name": [SentValue(f"{name} B", T0)]},
            )
        )
        await uow.create_intents.add(
            CreateIntent(customer_id=customer.id, system="stripe", idempotency_key=f"k{customer.id}", data=data, created_at=T0)
        )
        cid = customer.id
        for envelope in (
            Envelope(
                OUTBOUND_TOPIC,
                str(cid),
                f"out-{cid}",
                encode(change(cid, 0, ChangeKind.CREATED, data)),
                f"RequestRefused: Invalid email address: {email.upper()}",
            ),
            Envelope(
                INBOUND_TOPIC,
                f"stripe:{external_id}",
                f"in-{cid}",
                encode(
                    ExternalChange(
                        event_id=f"in-{cid}",
                        system="stripe",
                        kind=ChangeKind.UPDATED,
                        external_id=external_id,
                        occurred_at=T0,
                        customer=ExternalCustomer(
                            external_id=external_id, data=CustomerData(name, f"there.{email}"), claim=Claim(internal_id=cid)
                        ),
                    )
                ),
                "MappingBroken: 404",
            ),
            Envelope(
                REJECTED_WEBHOOK_TOPIC,
                "stripe",
                f"evt_r_{external_id}",
                rejected_webhook(external_id, email),
                "rejected: bad metadata",
            ),
            Envelope(OUTBOUND_TOPIC, str(cid), f"junk-{cid}", b"\xff not json", "UndecodableMessage"),
        ):
            await uow.dead_letters.add(envelope, T0)
        refused = SyncRecord.pending(f"out-{cid}", cid, Direction.OUTBOUND, "stripe", Operation.CREATE, T0)
        await uow.sync_records.save(refused.failed(T0, f"Invalid email address: {email}", dead=True))
        conflict = SyncRecord.pending(f"conflict-{cid}", cid, Direction.INBOUND, "stripe", Operation.UPDATE, T0)
        await uow.sync_records.save(conflict.succeeded(T0, "conflict on name: kept"))
        await uow.commit()
    events = [change(cid, 0, ChangeKind.CREATED, data), change(cid, 1, data=CustomerData(name, f"new.{email}"))]
    if deleted:
        events.append(change(cid, 2, ChangeKind.DELETED))
    await publish(uow_factory, events, OLD)
    return cid


async def everything_of(uow_factory, cid: int, external_id: str):
    async with uow_factory() as uow:
        letters = await uow.dead_letters.list(100, include_replayed=True)
        return (
            await uow.customers.get(cid),
            await uow.mappings.get(cid, "stripe"),
            await uow.create_intents.get(cid, "stripe"),
            sorted((d.event_id, d.payload, d.error) for d in letters if d.event_id.endswith((f"-{cid}", external_id))),
            await uow.sync_records.for_customer(cid, 10),
            [e for e in await stored_outbox(uow_factory) if e.customer_id == cid],
        )


async def test_only_deleted_customers_are_listed_to_scrub_with_their_links_and_any_event_waiting(uow_factory):
    live = await person(uow_factory, "Ada", "ada@example.com", "cus_1", deleted=False)
    gone = await person(uow_factory, "Bea", "bea@example.com", "cus_2", deleted=True)
    async with uow_factory() as uow:
        [candidate] = await uow.retention.unscrubbed(None, 10)
        assert await uow.retention.unscrubbed(gone, 10) == []
    assert (candidate.customer.id, candidate.customer.deleted, candidate.unpublished) == (gone, True, False)
    assert [m.external_id for m in candidate.mappings] == ["cus_2"]
    async with uow_factory() as uow:
        await uow.outbox.add(change(gone, 3, ChangeKind.DELETED))
        await uow.outbox.add(change(live, 3))
        await uow.commit()
    async with uow_factory() as uow:
        [candidate] = await uow.retention.unscrubbed(None, 10)
    assert candidate.unpublished


async def test_scrubbing_a_deleted_customer_clears_its_personal_data_everywhere_and_nobody_elses(uow_factory):
    live = await person(uow_factory, "Ada", "ada@example.com", "cus_1", deleted=False)
    gone = await person(uow_factory, "Bea", "bea@example.com", "cus_2", deleted=True)
    live_before = await everything_of(uow_factory, live, "cus_1")

    async with uow_factory() as uow:
        assert (await uow.retention.scrub_events(live, 100)).rows == 0  # not deleted: untouched
        assert await uow.retention.scrub_customer(live, frozenset({"ada@example.com"}), RECENT) == 0  # not deleted: untouched
        first = await uow.retention.scrub_events(gone, 1)
        rest = await uow.retention.scrub_events(gone, 100)
        rows = await uow.retention.scrub_customer(gone, first.emails | rest.emails, RECENT)
        await uow.commit()

    assert (first.rows, rest.rows) == (1, 1) and first.emails | rest.emails == {"bea@example.com", "new.bea@example.com"}
    assert rows == 6  # link, intent, 3 letters, 1 record (the tombstone was cleared when deleted)
    assert await everything_of(uow_factory, live, "cus_1") == live_before
    customer, mapping, intent, _, history, events = await everything_of(uow_factory, gone, "cus_2")
    assert customer.deleted and customer.data == CustomerData()
    assert (mapping.external_id, mapping.synced, mapping.external_writes, mapping.sent) == ("cus_2", CustomerData(), {}, {})
    assert mapping.synced_version == customer.version  # still says the deletion was carried over
    assert (intent.idempotency_key, intent.data) == (f"k{gone}", CustomerData())
    assert [e.data for e in events] == [None, None, None] and [e.kind for e in events] == [
        ChangeKind.CREATED,
        ChangeKind.UPDATED,
        ChangeKind.DELETED,
    ]
    notes = {r.event_id: (r.note, r.last_error) for r in history}
    assert notes[f"out-{gone}"] == (None, "Invalid email address: [scrubbed]")
    assert notes[f"conflict-{gone}"] == ("conflict on name: kept", None)
    async with uow_factory() as uow:
        letters = {d.event_id: d for d in await uow.dead_letters.list(100, include_replayed=True)}
        assert await uow.retention.unscrubbed(None, 10) == []
    assert decode(letters[f"out-{gone}"].payload, CustomerChanged).data is None
    assert letters[f"out-{gone}"].error == "RequestRefused: Invalid email address: [scrubbed]"
    inbound = decode(letters[f"in-{gone}"].payload, ExternalChange)
    assert inbound.customer.data == CustomerData() and inbound.customer.claim == Claim(internal_id=gone)
    assert msgspec.json.decode(letters["evt_r_cus_2"].payload)["data"] == {"object": {"id": "cus_2", "object": "customer"}}
    assert msgspec.json.decode(letters["evt_r_cus_2"].payload)["type"] == "customer.updated"
    assert letters[f"junk-{gone}"].payload == b"\xff not json"  # unreadable: left as it is
    assert b"ada@example.com" in letters["evt_r_cus_1"].payload and b"Ada" in letters[f"out-{live}"].payload

    async with uow_factory() as uow:  # a second scrub finds nothing left
        assert (await uow.retention.scrub_events(gone, 100)).rows == 0
        assert await uow.retention.scrub_customer(gone, frozenset(), RECENT) is None  # scrubbed already: not counted again


async def test_a_deleted_customer_whose_create_is_still_in_flight_is_not_scrubbed_until_it_settles(uow_factory):
    """Found by review: deleted while its create was on its way to Stripe (no link yet). A create
    landing after a scrub would link it with the values it sent: the data stays until it settles."""
    data = CustomerData("Cy", "cy@example.com")
    async with uow_factory() as uow:
        customer = await uow.customers.add(data, T0)
        await uow.create_intents.add(
            CreateIntent(customer_id=customer.id, system="stripe", idempotency_key="k-cy", data=data, created_at=T0)
        )
        await uow.customers.save(customer.tombstone(T0 + timedelta(seconds=1)))
        await uow.commit()
    async with uow_factory() as uow:
        [candidate] = await uow.retention.unscrubbed(None, 10)
        assert candidate.in_flight and not candidate.unpublished
        assert await uow.retention.scrub_customer(customer.id, frozenset(), RECENT) is None  # checked again under lock
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.create_intents.get(customer.id, "stripe")).data == data  # untouched
        retrying = SyncRecord.pending("out-cy", customer.id, Direction.OUTBOUND, "stripe", Operation.CREATE, T0)
        await uow.sync_records.save(retrying.failed(T0, "stripe: 503", dead=False))
        await uow.create_intents.remove(customer.id, "stripe")  # the create's answer came: nothing made
        await uow.commit()
    async with uow_factory() as uow:
        [candidate] = await uow.retention.unscrubbed(None, 10)
        assert candidate.in_flight  # a record still retrying: something may still land
        await uow.sync_records.save(retrying.failed(T0, "stripe: 400", dead=True))
        await uow.commit()
    async with uow_factory() as uow:
        [candidate] = await uow.retention.unscrubbed(None, 10)
        assert not candidate.in_flight
        assert await uow.retention.scrub_customer(customer.id, frozenset(), RECENT) == 0
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.retention.unscrubbed(None, 10) == []
