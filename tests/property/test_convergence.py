"""Property: whatever the interleaving of edits on both sides, duplicated, delayed and reordered
webhooks, failing Stripe calls and workers dying before they commit, once everything is delivered
the catalog equals Stripe, nobody exists twice and nothing deleted comes back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.memory.clock import FakeClock
from adapters.stripe.integration import StripeIntegration
from application.commands import PatchCustomer
from application.customers.update import patch_customer
from application.sync.consumer import RetryPolicy
from application.sync.groups import SyncConsumers
from application.sync.relay import relay_once
from domain.conflicts import ConflictPolicy
from domain.errors import CustomerNotFound
from domain.messages import INBOUND_TOPIC
from entrypoints.container import subscribe, sync_consumers
from entrypoints.settings import Settings
from tests.support.edits import CATALOG_EDITS, STRIPE_EDITS, catalog_edit, stripe_edit
from tests.support.faults import CrashBeforeCommit, FlakyStripe, WebhookWire, WorkerCrashed
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem

NAMES = st.sampled_from(["Ada", "Grace", "Linus", None])
EMAILS = st.sampled_from(["ada@example.com", "grace@example.com", None])
OPS = [
    "api_create",
    "api_update",
    "api_delete",
    "stripe_create",
    "stripe_update",
    "stripe_delete",
    "relay",
    "consume",
    "crash",
    "deliver",
    "deliver_twice",
    "tick",
]


class Harness:
    def __init__(self, policy: ConflictPolicy, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clock = FakeClock()
        self.system = EmbeddedSystem(Settings(stripe_webhook_secret=WEBHOOK_SECRET, conflict_policy=policy), clock=self.clock)
        self.system.stripe.ids = random.Random(seed)  # reproducible cus_ ids: hypothesis replays runs
        self.flaky = FlakyStripe(self.system.stripe, self.rng)
        self.system.use_integration("stripe", StripeIntegration(self.flaky, [WEBHOOK_SECRET]))
        self.wire = WebhookWire(self.system, WEBHOOK_SECRET)
        self.flaky.meanwhile = self.meanwhile
        self.busy = False
        self.api_deleted: set[int] = set()
        self.stripe_deleted: set[str] = set()
        self.crashes = 0

    def consumer(self, batch: int, crash: bool = False) -> SyncConsumers:
        c = self.system.container
        sources = {g.name: subscribe(c, g) for g in c.sync_groups()}
        if crash:
            sources = {name: CrashBeforeCommit(source) for name, source in sources.items()}
        return sync_consumers(c, sources, retry=RetryPolicy(max_attempts=5, base_delay=0.01), batch_size=batch)

    async def consume(self, batch: int, crash: bool = False) -> int:
        try:
            return await self.consumer(batch, crash).run_once(asyncio.Event())
        except WorkerCrashed:
            self.crashes += 1
            return batch

    async def meanwhile(self) -> None:
        """While one of our writes is in flight: now and then a person edits either side, or
        another worker applies the webhooks that arrived (drawn from the run's seed)."""
        if self.busy or self.rng.random() > 0.3:
            return
        self.busy = True
        try:
            choice = self.rng.random()
            field = self.rng.choice(["name", "email"])
            value = self.rng.choice(["Ada", "Grace", None] if field == "name" else ["ada@example.com", None])
            if choice < 0.35 and (ids := await self.alive_here()):
                customer_id = self.rng.choice(ids)
                with contextlib.suppress(CustomerNotFound):
                    await patch_customer(
                        PatchCustomer(customer_id=customer_id, changes={field: value}), self.system.uow_factory(), self.clock
                    )
            elif choice < 0.7 and (ids := self.alive_in_stripe()):
                await self.system.stripe.update_async(self.rng.choice(ids), params={field: value or ""})
            else:
                self.wire.collect()
                for _ in range(min(2, len(self.wire.pending))):
                    await self.wire.deliver(self.rng.randrange(len(self.wire.pending)))
                await self.system.new_consumer(topics=(INBOUND_TOPIC,)).run_once(asyncio.Event())
        finally:
            self.busy = False

    async def relay(self) -> int:
        c = self.system.container
        return await relay_once(c.uow_factory(), c.publisher(), self.clock)

    def alive_in_stripe(self) -> list[str]:
        return sorted(self.system.stripe.customers)

    async def alive_here(self) -> list[int]:
        async with self.system.uow_factory() as uow:
            return [c.id for c in await uow.customers.page(after_id=None, limit=10_000)]

    async def step(self, op: str, data: st.DataObject) -> None:
        uow = self.system.uow_factory
        if op in CATALOG_EDITS:
            await catalog_edit(op, data, uow, self.clock, self.alive_here, NAMES, EMAILS, self.api_deleted)
        elif op in STRIPE_EDITS:
            await stripe_edit(op, data, self.system.stripe, NAMES, EMAILS, self.stripe_deleted)
        elif op == "relay":
            await self.relay()
        elif op in ("consume", "crash"):
            await self.consume(data.draw(st.integers(1, 4)), crash=op == "crash")
        elif op in ("deliver", "deliver_twice"):
            await self.wire.deliver(data.draw(st.integers(0, 50)), keep=op == "deliver_twice")
        elif op == "tick":
            self.clock.advance(data.draw(st.sampled_from([0.3, 1, 2])))

    async def quiesce(self) -> None:
        for _ in range(30):  # a healthy system settles in a handful of rounds; more is a ping-pong
            moved = await self.relay()
            moved += await self.wire.drain(self.rng)
            moved += await self.consume(1000)
            if not moved:
                return
        raise AssertionError("no quiescence after 30 rounds: changes keep bouncing between the sides")

    async def assert_converged(self) -> None:
        here = await self.alive_here()
        stripe_side = self.system.stripe.customers
        async with self.system.uow_factory() as uow:
            for customer_id in here:
                customer = await uow.customers.get(customer_id)
                mapping = await uow.mappings.get(customer_id, "stripe")
                assert mapping is not None, f"customer {customer_id} never reached Stripe"
                twin = stripe_side.get(mapping.external_id)
                assert twin is not None, f"customer {customer_id}'s twin {mapping.external_id} is gone from Stripe"
                assert (twin["name"], twin["email"]) == (customer.name, customer.email), f"customer {customer_id} diverged"
                assert twin["metadata"].get("internal_id") == str(customer_id)
            linked = {(await uow.mappings.get(i, "stripe")).external_id for i in here}
            assert linked == set(stripe_side), f"Stripe customers without a live twin here: {set(stripe_side) - linked}"
            for customer_id in self.api_deleted:
                assert (await uow.customers.get(customer_id)).deleted, f"customer {customer_id} came back"
            for external_id in self.stripe_deleted:
                mapping = await uow.mappings.by_external_id("stripe", external_id)
                assert mapping is None or (await uow.customers.get(mapping.customer_id)).deleted
        dead = self.system.messages("sync.outbound.dlq") + self.system.messages("sync.inbound.dlq")
        assert dead == [], f"dead letters: {[d.error for d in dead]}"  # nothing here is beyond retrying
        internal_ids = [c["metadata"].get("internal_id") for c in stripe_side.values()]
        assert len(internal_ids) == len(set(internal_ids)), "two Stripe customers for one catalog customer"
        assert not (self.stripe_deleted & set(stripe_side))


@settings(
    max_examples=int(os.environ.get("CUSTSYNC_PROPERTY_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data(), policy=st.sampled_from(list(ConflictPolicy)), seed=st.integers(0, 2**32 - 1), length=st.integers(5, 120))
def test_any_interleaving_converges_once_quiet(data, policy, seed, length):
    async def scenario() -> None:
        harness = Harness(policy, seed)
        for _ in range(length):
            await harness.step(data.draw(st.sampled_from(OPS)), data)
        await harness.quiesce()
        await harness.assert_converged()

    asyncio.run(scenario())
