"""Property: the catalog as the hub of a three-way sync. Whatever the interleaving of edits in the
catalog, in Stripe and in Salesforce -- with duplicated and reordered webhooks, overlapping polls,
failing calls on both sides (before they land, or after, with the answer lost) and workers dying
before they commit -- once everything is delivered all three hold the same customers, nobody
exists twice anywhere, nothing deleted comes back, and each conflict was settled by the policy."""

from __future__ import annotations

import asyncio
import os
import random

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.memory.clock import FakeClock
from adapters.memory.salesforce import InMemorySalesforce
from adapters.salesforce.auth import ClientCredentials
from adapters.salesforce.contacts import customer_data
from adapters.salesforce.integration import SalesforceIntegration
from adapters.stripe.integration import StripeIntegration
from application.sync.catchup import catch_up_once
from application.sync.consumer import RetryPolicy
from application.sync.groups import SyncConsumers
from application.sync.relay import relay_once
from domain.conflicts import ConflictPolicy
from entrypoints.container import subscribe, sync_consumers
from entrypoints.settings import Settings
from tests.support.edits import CATALOG_EDITS, STRIPE_EDITS, catalog_edit, stripe_edit
from tests.support.faults import CrashBeforeCommit, FlakyStripe, WebhookWire, WorkerCrashed
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem

NAMES = st.sampled_from(["Ada", "Grace Hopper", "Linus", None])
EMAILS = st.sampled_from(["ada@example.com", "grace@example.com", None])
PERSON_NAMES = st.sampled_from([(None, "Ada"), ("Grace", "Hopper"), (None, "Linus"), ("Ada", "King Lovelace")])
OPS = [
    "api_create",
    "api_update",
    "api_delete",
    "stripe_create",
    "stripe_update",
    "stripe_delete",
    "sf_create",
    "sf_update",
    "sf_delete",
    "relay",
    "consume",
    "crash",
    "deliver",
    "deliver_twice",
    "poll",
    "tick",
]
OVERLAP = 30.0


class FlakyOrg:
    """The org behind an unreliable network, like FlakyStripe: a call may fail before it reaches
    Salesforce (503, REQUEST_LIMIT_EXCEEDED, UNABLE_TO_LOCK_ROW) or land and lose its answer (a
    timeout after the write). Never two failures in a row, so nothing is dead-lettered."""

    def __init__(self, org: InMemorySalesforce, rng: random.Random, rate: float = 0.2) -> None:
        self.org, self.rng, self.rate = org, rng, rate
        self.recent = [False, False]
        self.faults = 0

    def _fault(self) -> bool:
        failed = not any(self.recent) and self.rng.random() < self.rate
        self.recent = [self.recent[-1], failed]
        self.faults += failed
        return failed

    def handle(self, request: httpx.Request) -> httpx.Response:
        if "/oauth2/" not in request.url.path and self._fault():
            status, code = self.rng.choice(
                [(503, "SERVER_UNAVAILABLE"), (403, "REQUEST_LIMIT_EXCEEDED"), (400, "UNABLE_TO_LOCK_ROW")]
            )
            return httpx.Response(status, json=[{"errorCode": code, "message": "injected", "fields": []}])
        response = self.org.handle(request)
        if request.method in ("PATCH", "DELETE") and response.status_code < 300 and self._fault():
            raise httpx.ReadTimeout("timed out reading the response", request=request)  # the write did happen
        return response


class Harness:
    def __init__(self, policy: ConflictPolicy, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clock = FakeClock()
        settings_ = Settings(stripe_webhook_secret=WEBHOOK_SECRET, conflict_policy=policy, integrations="stripe,salesforce")
        self.system = EmbeddedSystem(settings_, clock=self.clock)
        self.system.stripe.ids = random.Random(seed)
        self.flaky = FlakyStripe(self.system.stripe, self.rng)
        self.system.use_integration("stripe", StripeIntegration(self.flaky, [WEBHOOK_SECRET]))
        self.org = InMemorySalesforce(self.clock, random.Random(seed + 1), client_id="p", client_secret="p")
        self.flaky_org = FlakyOrg(self.org, self.rng)
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.flaky_org.handle))
        self.salesforce = SalesforceIntegration(http, ClientCredentials(http, self.org.instance_url, "p", "p"))
        self.system.use_integration("salesforce", self.salesforce)
        self.wire = WebhookWire(self.system, WEBHOOK_SECRET)
        self.api_deleted: set[int] = set()
        self.stripe_deleted: set[str] = set()
        self.sf_deleted: set[str] = set()

    async def start(self) -> None:
        await self.poll()  # the first poll sets catch-up's floor: what comes after it is listed

    async def poll(self) -> int:
        c = self.system.container
        for _ in range(5):  # a failed poll changes nothing: it is simply run again
            try:
                done = await catch_up_once(self.salesforce, c.uow_factory(), c.publisher(), self.clock, "poller", OVERLAP)
            except Exception:
                continue
            return done.published if done is not None else 0
        return 0

    def consumer(self, batch: int, crash: bool = False, group: str | None = None) -> SyncConsumers:
        """The worker's groups (or only ``group``: the groups run out of step with one another)."""
        c = self.system.container
        sources = {g.name: subscribe(c, g) for g in c.sync_groups() if group in (None, g.name)}
        if crash:
            sources = {name: CrashBeforeCommit(source) for name, source in sources.items()}
        return sync_consumers(c, sources, retry=RetryPolicy(max_attempts=5, base_delay=0.01), batch_size=batch)

    async def consume(self, batch: int, crash: bool = False, group: str | None = None) -> int:
        try:
            return await self.consumer(batch, crash, group).run_once(asyncio.Event())
        except WorkerCrashed:
            return batch

    async def relay(self) -> int:
        c = self.system.container
        return await relay_once(c.uow_factory(), c.publisher(), self.clock)

    async def alive_here(self) -> list[int]:
        async with self.system.uow_factory() as uow:
            return [c.id for c in await uow.customers.page(after_id=None, limit=10_000)]

    def contacts(self) -> list[str]:
        return sorted(c["Id"] for c in self.org.live())

    async def step(self, op: str, data: st.DataObject) -> None:
        uow = self.system.uow_factory
        if op in CATALOG_EDITS:
            await catalog_edit(op, data, uow, self.clock, self.alive_here, NAMES, EMAILS, self.api_deleted)
        elif op in STRIPE_EDITS:
            await stripe_edit(op, data, self.system.stripe, NAMES, EMAILS, self.stripe_deleted)
        elif op == "sf_create":
            first, last = data.draw(PERSON_NAMES)
            self.org.create(FirstName=first, LastName=last, Email=data.draw(EMAILS))
        elif op in ("sf_update", "sf_delete") and (ids := self.contacts()):
            contact_id = data.draw(st.sampled_from(ids))
            if op == "sf_update":
                if data.draw(st.booleans()):
                    first, last = data.draw(PERSON_NAMES)
                    self.org.edit(contact_id, FirstName=first, LastName=last)
                else:
                    self.org.edit(contact_id, Email=data.draw(EMAILS))
            else:
                self.org.delete(contact_id)
                self.sf_deleted.add(contact_id)
        elif op == "relay":
            await self.relay()
        elif op in ("consume", "crash"):
            group = data.draw(st.sampled_from([None, "catalog", "stripe", "salesforce"]))
            await self.consume(data.draw(st.integers(1, 4)), crash=op == "crash", group=group)
        elif op in ("deliver", "deliver_twice"):
            await self.wire.deliver(data.draw(st.integers(0, 50)), keep=op == "deliver_twice")
        elif op == "poll":
            await self.poll()
        elif op == "tick":
            self.clock.advance(data.draw(st.sampled_from([0.3, 1, 2])))

    async def quiesce(self) -> None:
        for _ in range(30):  # a healthy hub settles in a handful of rounds; more is a ping-pong
            self.clock.advance(1)
            moved = await self.relay()
            moved += await self.wire.drain(self.rng)
            moved += await self.poll()
            moved += await self.consume(1000)
            if not moved:
                return
        raise AssertionError("no quiescence after 30 rounds: changes keep bouncing between the sides")

    async def assert_converged(self) -> None:
        here = await self.alive_here()
        stripe_side = self.system.stripe.customers
        contacts = {c["Id"]: c for c in self.org.live()}
        async with self.system.uow_factory() as uow:
            for customer_id in here:
                customer = await uow.customers.get(customer_id)
                for system in ("stripe", "salesforce"):
                    mapping = await uow.mappings.get(customer_id, system)
                    assert mapping is not None, f"customer {customer_id} never reached {system}"
                    if system == "stripe":
                        twin = stripe_side.get(mapping.external_id)
                        held = None if twin is None else (twin["name"], twin["email"])
                    else:
                        contact = contacts.get(mapping.external_id)
                        held = None if contact is None else (customer_data(contact).name, customer_data(contact).email)
                    assert held is not None, f"customer {customer_id}'s {system} twin {mapping.external_id} is gone"
                    assert held == (customer.name, customer.email), f"customer {customer_id} diverged from {system}: {held}"
            linked_stripe = {(await uow.mappings.get(i, "stripe")).external_id for i in here}
            linked_sf = {(await uow.mappings.get(i, "salesforce")).external_id for i in here}
            assert linked_stripe == set(stripe_side), f"Stripe customers without a live twin: {set(stripe_side) - linked_stripe}"
            assert linked_sf == set(contacts), f"Contacts without a live twin: {set(contacts) - linked_sf}"
            for customer_id in self.api_deleted:
                assert (await uow.customers.get(customer_id)).deleted, f"customer {customer_id} came back"
            for system, gone in (("stripe", self.stripe_deleted), ("salesforce", self.sf_deleted)):
                for external_id in gone:
                    mapping = await uow.mappings.by_external_id(system, external_id)
                    assert mapping is None or (await uow.customers.get(mapping.customer_id)).deleted, f"{external_id} came back"
        dead = self.system.messages("sync.outbound.dlq") + self.system.messages("sync.inbound.dlq")
        assert dead == [], f"dead letters: {[d.error for d in dead]}"
        stripe_ids = [c["metadata"].get("internal_id") for c in stripe_side.values()]
        assert len(stripe_ids) == len(set(stripe_ids)), "two Stripe customers for one catalog customer"
        tags = [c[self.org.external_id_field] for c in contacts.values()]
        assert None not in tags and len(tags) == len(set(tags)), f"a Contact untagged or tagged twice: {tags}"
        assert not (self.stripe_deleted & set(stripe_side)) and not (self.sf_deleted & set(contacts))


@settings(
    max_examples=int(os.environ.get("CUSTSYNC_PROPERTY_EXAMPLES", "400")) // 2,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data(), policy=st.sampled_from(list(ConflictPolicy)), seed=st.integers(0, 2**31), length=st.integers(5, 120))
def test_any_interleaving_on_three_sides_converges_once_quiet(data, policy, seed, length):
    async def scenario() -> None:
        harness = Harness(policy, seed)
        await harness.start()
        for _ in range(length):
            await harness.step(data.draw(st.sampled_from(OPS)), data)
        await harness.quiesce()
        await harness.assert_converged()

    asyncio.run(scenario())
