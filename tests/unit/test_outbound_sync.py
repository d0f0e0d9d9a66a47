"""Catalog changes reach Stripe: once, with only what changed, and never back to where they came from."""

import stripe

from adapters.stripe.integration import StripeIntegration
from application.commands import CreateCustomer, DeleteCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.delete import delete_customer
from application.customers.update import patch_customer
from application.sync.outbound import sync_outbound
from domain.conflicts import ConflictPolicy
from domain.mapping import CreateIntent
from domain.messages import OUTBOUND_TOPIC, CustomerChanged, decode
from domain.sync import Direction, SyncStatus
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem, tagged

POLICY = Settings().conflict_policy  # what the worker runs with by default


async def create(system, name="Ada", email="ada@example.com"):
    return await create_customer(CreateCustomer(name, email), system.uow_factory(), system.clock)


async def test_a_create_reaches_stripe_once_with_our_id_in_metadata(system):
    customer = await create(system)
    await system.settle()
    mapping = await system.mapping(customer.id)
    assert list(system.stripe.customers) == [mapping.external_id]
    assert tagged(system.stripe.customers[mapping.external_id]["metadata"]) == await system.tags(customer.id)
    assert mapping.in_sync_with(await system.customer(customer.id))
    [record] = [r for r in await system.history(customer.id) if r.direction is Direction.OUTBOUND]
    assert (record.operation.value, record.status, record.attempts) == ("create", SyncStatus.SUCCEEDED, 1)


async def test_a_redelivered_create_does_not_call_stripe_again(system):
    customer = await create(system)
    await system.settle()
    [envelope] = system.messages(OUTBOUND_TOPIC)
    calls = len(system.stripe.calls)
    await sync_outbound(decode(envelope.payload, CustomerChanged), system.container.integrations(), await system.context(POLICY))
    assert len(system.stripe.calls) == calls
    assert len(system.stripe.customers) == 1 and (await system.mapping(customer.id)) is not None


async def test_a_create_retried_after_losing_its_result_reuses_the_idempotency_key(system):
    customer = await create(system)
    await system.settle()
    # Simulate a worker that crashed after Stripe answered but before recording the outcome: the
    # mapping was never stored, and the saved create intent still waits for its answer.
    [(_, key)] = [call for call in system.stripe.calls if call[0] == "create"]
    async with system.uow_factory() as uow:
        await uow.mappings.remove(customer.id, "stripe")
        await uow.create_intents.add(
            CreateIntent(
                customer_id=customer.id,
                system="stripe",
                idempotency_key=key,
                data=customer.data,
                created_at=system.clock.now(),
            )
        )
        for record in await uow.sync_records.for_customer(customer.id, 10):
            await uow.sync_records.save(record.failed(system.clock.now(), "crashed", dead=False))
        await uow.commit()
    [envelope] = system.messages(OUTBOUND_TOPIC)
    await sync_outbound(decode(envelope.payload, CustomerChanged), system.container.integrations(), await system.context(POLICY))
    creates = [key for method, key in system.stripe.calls if method == "create"]
    assert len(creates) == 2 and creates[0] == creates[1]
    assert len(system.stripe.customers) == 1
    assert (await system.mapping(customer.id)).external_id in system.stripe.customers


async def test_an_update_sends_only_the_changed_field_and_keeps_other_metadata(system):
    customer = await create(system)
    await system.settle()
    external_id = (await system.mapping(customer.id)).external_id
    await system.stripe.update_async(external_id, params={"metadata": {"crm_tier": "gold"}})  # someone else's key
    await system.settle()
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "Ada L."}), system.uow_factory(), system.clock)
    await system.settle()
    twin = system.stripe.customers[external_id]
    assert (twin["name"], twin["email"]) == ("Ada L.", "ada@example.com")
    assert tagged(twin["metadata"]) == await system.tags(customer.id, crm_tier="gold")
    update_events = [e for e in system.stripe.events if e["type"] == "customer.updated"]
    assert update_events[-1]["data"]["previous_attributes"] == {"name": "Ada"}


async def test_clearing_a_field_unsets_it_in_stripe(system):
    customer = await create(system)
    await system.settle()
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"email": None}), system.uow_factory(), system.clock)
    await system.settle()
    assert system.stripe.customers[(await system.mapping(customer.id)).external_id]["email"] is None


async def test_a_delete_reaches_stripe_and_settles_the_link(system):
    customer = await create(system)
    await system.settle()
    external_id = (await system.mapping(customer.id)).external_id
    await delete_customer(DeleteCustomer(customer_id=customer.id), system.uow_factory(), system.clock)
    await system.settle()
    assert external_id in system.stripe.deleted and external_id not in system.stripe.customers
    assert (await system.mapping(customer.id)).in_sync_with(await system.customer(customer.id))


async def test_a_customer_created_and_deleted_before_syncing_never_reaches_stripe(system):
    customer = await create(system)
    await delete_customer(DeleteCustomer(customer_id=customer.id), system.uow_factory(), system.clock)
    await system.settle()
    assert [m for m, _ in system.stripe.calls if m == "create"] == []


async def test_events_are_applied_from_current_state_so_a_burst_converges(system):
    customer = await create(system)
    for i in range(5):
        await patch_customer(
            PatchCustomer(customer_id=customer.id, changes={"name": f"Ada {i}"}), system.uow_factory(), system.clock
        )
    await system.settle()
    twin = system.stripe.customers[(await system.mapping(customer.id)).external_id]
    assert twin["name"] == "Ada 4"
    # The create already carried the latest name: every later event found nothing left to send.
    assert [m for m, _ in system.stripe.calls if m in ("create", "update")] == ["create"]


async def test_a_burst_of_edits_to_a_linked_customer_costs_one_push(system):
    customer = await create(system)
    await system.settle()
    before, published = len(system.stripe.calls), len(system.messages(OUTBOUND_TOPIC))
    for i in range(20):
        await patch_customer(
            PatchCustomer(customer_id=customer.id, changes={"name": f"Ada {i}"}), system.uow_factory(), system.clock
        )
    await system.settle()
    twin = system.stripe.customers[(await system.mapping(customer.id)).external_id]
    assert twin["name"] == "Ada 19"
    assert [m for m, _ in system.stripe.calls[before:]] == ["retrieve", "update"]  # one push, not twenty
    assert len(system.messages(OUTBOUND_TOPIC)) - published == 1  # the relay sent the last edit for all twenty
    assert (await system.mapping(customer.id)).in_sync_with(await system.customer(customer.id))


async def test_a_burst_already_on_the_topic_is_coalesced_by_the_worker(system):
    customer = await create(system)
    await system.settle()
    before = len(system.stripe.calls)
    for i in range(5):  # relayed one by one (as several relay turns would), consumed together
        await patch_customer(
            PatchCustomer(customer_id=customer.id, changes={"name": f"Ada {i}"}), system.uow_factory(), system.clock
        )
        await system.relay()
    await system.settle()
    assert [m for m, _ in system.stripe.calls[before:]] == ["retrieve", "update"]
    assert system.consumer.coalesced == 4


def test_the_relay_leaves_out_only_events_a_later_one_of_the_same_customer_stands_for():
    from datetime import UTC, datetime

    from application.sync.relay import coalesce
    from domain.messages import ChangeKind

    def event(n, customer_id=1, origin=None):
        return CustomerChanged(
            event_id=f"e{n}",
            customer_id=customer_id,
            kind=ChangeKind.UPDATED,
            version=n,
            data=None,
            occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
            origin=origin,
        )

    batch = [event(1), event(2, customer_id=2), event(3), event(4, origin="stripe"), event(5), event(6), event(7, customer_id=2)]
    assert [e.event_id for e in coalesce(batch)] == ["e3", "e4", "e6", "e7"]


def test_only_an_event_asking_the_same_thing_stands_for_an_earlier_one():
    from datetime import UTC, datetime

    from domain.messages import ChangeKind

    def event(kind=ChangeKind.UPDATED, origin=None, forced=False, customer_id=1):
        return CustomerChanged(
            event_id="e",
            customer_id=customer_id,
            kind=kind,
            version=1,
            data=None,
            occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
            origin=origin,
            forced=forced,
        )

    assert event().stands_for(event(ChangeKind.CREATED))  # a create not yet pushed: the push creates
    assert event(ChangeKind.DELETED).stands_for(event())
    assert event(origin="stripe").stands_for(event(origin="stripe"))
    assert not event(customer_id=2).stands_for(event())
    assert not event(origin="stripe").stands_for(event())  # the catalog's change must still reach Stripe
    assert not event().stands_for(event(origin="stripe"))
    assert not event().stands_for(event(forced=True))  # an operator's push is done as asked
    assert not event(forced=True).stands_for(event())
    assert not event(origin="stripe").stands_for(event(ChangeKind.CREATED, origin="stripe"))  # the tag


async def test_an_update_for_a_customer_deleted_in_stripe_deletes_it_here(system):
    customer = await create(system)
    await system.settle()
    external_id = (await system.mapping(customer.id)).external_id
    await system.stripe.delete_async(external_id)
    system.delivered = len(system.stripe.events)  # its webhook is lost: only the 404 can tell us
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "B"}), system.uow_factory(), system.clock)
    await system.settle()
    assert (await system.customer(customer.id)).deleted
    assert external_id not in system.stripe.customers
    notes = [r.note for r in await system.history(customer.id)]
    assert "deleted in stripe: deleted here too" in notes


class CreatesThatTimeOut:
    """Stripe creates the customer, then the answer is lost, for the first ``n`` creates."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.n = inner, n

    async def create_async(self, params=None, options=None):
        created = await self.inner.create_async(params=params, options=options)
        if self.n:
            self.n -= 1
            raise stripe.APIConnectionError("timed out reading the response")
        return created

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def test_a_create_whose_answers_were_lost_is_retried_into_the_customer_it_made_not_a_twin(clock):
    system = EmbeddedSystem(Settings(stripe_webhook_secret=WEBHOOK_SECRET, worker_max_attempts=2), clock=clock)
    system.use_integration("stripe", StripeIntegration(CreatesThatTimeOut(system.stripe, n=2), [WEBHOOK_SECRET]))
    customer = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    await system.relay()
    await system.consume()  # two attempts time out after Stripe made the customer; the third links it
    [external_id] = system.stripe.customers
    assert (await system.mapping(customer.id)).external_id == external_id
    assert system.messages("sync.outbound.dlq") == []  # a timeout is waited out, never dead-lettered
    system.delivered = len(system.stripe.events)  # and its webhook is lost too
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "Ada L."}), system.uow_factory(), system.clock)
    await system.settle()
    [(external_id, twin)] = system.stripe.customers.items()
    assert (await system.mapping(customer.id)).external_id == external_id
    assert (twin["name"], twin["metadata"]["internal_id"]) == ("Ada L.", str(customer.id))


def _internal_wins(clock):
    return EmbeddedSystem(
        Settings(stripe_webhook_secret=WEBHOOK_SECRET, conflict_policy=ConflictPolicy.INTERNAL_WINS), clock=clock
    )


async def test_under_internal_wins_an_update_is_one_call_and_other_policies_read_first(clock):
    from domain.conflicts import ConflictPolicy

    for policy, calls in (
        (ConflictPolicy.INTERNAL_WINS, ["update"]),
        (ConflictPolicy.LATEST_WINS, ["retrieve", "update"]),
        (ConflictPolicy.EXTERNAL_WINS, ["retrieve", "update"]),
    ):
        system = EmbeddedSystem(Settings(stripe_webhook_secret=WEBHOOK_SECRET, conflict_policy=policy), clock=clock)
        customer = await create(system)
        await system.settle()
        before = len(system.stripe.calls)
        await patch_customer(
            PatchCustomer(customer_id=customer.id, changes={"name": "Grace"}), system.uow_factory(), system.clock
        )
        await system.settle()
        assert [m for m, _ in system.stripe.calls[before:]] == calls, policy
        external_id = (await system.mapping(customer.id)).external_id
        assert system.stripe.customers[external_id]["name"] == "Grace"
        assert (await system.mapping(customer.id)).in_sync_with(await system.customer(customer.id))


async def test_a_change_made_in_stripe_to_another_field_survives_a_write_without_a_read(clock):
    system = _internal_wins(clock)
    customer = await create(system)
    await system.settle()
    external_id = (await system.mapping(customer.id)).external_id
    await system.stripe.update_async(external_id, params={"email": "grace@stripe.example"})  # its event not yet delivered
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "Grace"}), system.uow_factory(), system.clock)
    await system.relay()
    await system.consume()  # our write goes first: the name alone
    assert system.stripe.customers[external_id]["email"] == "grace@stripe.example"
    await system.settle()  # then Stripe's event: taken
    current = await system.customer(customer.id)
    assert (current.name, current.email) == ("Grace", "grace@stripe.example")
    assert (system.stripe.customers[external_id]["name"], system.stripe.customers[external_id]["email"]) == (
        "Grace",
        "grace@stripe.example",
    )


async def test_a_write_without_a_read_to_a_customer_deleted_in_stripe_deletes_it_here_only_on_proof(clock):
    system = _internal_wins(clock)
    customer = await create(system)
    await system.settle()
    external_id = (await system.mapping(customer.id)).external_id
    await system.stripe.delete_async(external_id)
    system.delivered = len(system.stripe.events)  # its webhook is lost: only the write's 404 and a re-fetch tell
    before = len(system.stripe.calls)
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "B"}), system.uow_factory(), system.clock)
    await system.settle()
    assert [m for m, _ in system.stripe.calls[before:]][:2] == ["update", "retrieve"]
    assert (await system.customer(customer.id)).deleted


async def test_an_update_after_a_push_whose_outcome_is_unknown_reads_first_even_under_internal_wins(clock):
    system = _internal_wins(clock)
    customer = await create(system)
    await system.settle()
    system.stripe.fail_next("update", 500, executed=True)  # the write lands, its answer is a 500
    await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "Grace"}), system.uow_factory(), system.clock)
    before = len(system.stripe.calls)
    await system.settle()
    # The retry reads (the 500 may have landed, and did): Stripe holds our value, so nothing is written again.
    assert [m for m, _ in system.stripe.calls[before:]] == ["update", "retrieve"]
    assert (await system.mapping(customer.id)).in_sync_with(await system.customer(customer.id))
