"""The whole service in one process on the in-memory adapters, driven step by step.

``settle()`` runs the relay, the worker and Stripe's webhook delivery until nothing moves, so a test
can make changes on either side and then assert on the converged state without sleeping.
"""

from __future__ import annotations

import asyncio

from dependency_injector import providers

from adapters.memory.stripe import InMemoryStripe
from application.sync.consumer import RetryPolicy
from application.sync.groups import SyncConsumers
from application.sync.relay import relay_once
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC
from entrypoints.container import Container, build_container, subscribe, sync_consumers
from entrypoints.dev import deliver_stripe_event
from entrypoints.settings import Settings

WEBHOOK_SECRET = "whsec_test_secret"


class EmbeddedSystem:
    def __init__(self, settings: Settings | None = None, clock=None) -> None:
        settings = settings or Settings(stripe_webhook_secret=WEBHOOK_SECRET)
        self.container: Container = build_container(settings)
        if clock is not None:
            self.container.clock.override(clock)
        self.clock = self.container.clock()
        stripe = self.container.stripe_customers()
        # The in-memory Stripe stand-in, or None when the SDK talks HTTP (tests use respx then).
        self.stripe: InMemoryStripe | None = stripe if isinstance(stripe, InMemoryStripe) else None
        self.max_attempts = settings.worker_max_attempts
        self.secret = settings.stripe_webhook_secret
        self.delivered = 0
        self.webhooks = True  # False: the endpoint is disabled, and what Stripe raises meanwhile is never sent
        self._published: dict[str, object] = {}  # per catch-up poller: what it published lately
        self.stopping = asyncio.Event()
        self.consumer = self.new_consumer()

    def new_consumer(self, topics: tuple[str, ...] = (OUTBOUND_TOPIC, INBOUND_TOPIC)) -> SyncConsumers:
        """A fresh worker (its groups reading ``topics``): it resumes from the groups' committed
        offsets, like a restarted process."""
        c = self.container
        sources = {g.name: subscribe(c, g) for g in c.sync_groups() if set(g.topics) & set(topics)}
        return sync_consumers(c, sources, retry=RetryPolicy(max_attempts=self.max_attempts, base_delay=0.01))

    def use_integration(self, system: str, integration) -> None:
        """Put ``integration`` in place of the container's ``system`` (a wrapper with faults, a
        fake that times out), for the worker too."""
        getattr(self.container, system).override(providers.Object(integration))
        self._rewired()
        assert self.container.integrations()[system] is integration

    def use_stripe(self, stripe: InMemoryStripe) -> None:
        """Swap in another Stripe account (as a changed STRIPE_SECRET_KEY would), for the worker too."""
        self.container.stripe_customers.override(providers.Object(stripe))
        self.container.stripe.reset()
        self._rewired()
        self.stripe = stripe
        self.delivered = 0

    def _rewired(self) -> None:
        """What holds the integrations is built again, and a worker started on them."""
        for provider in (self.container.integrations, self.container.inbound_handler):
            provider.reset()
        self.consumer = self.new_consumer()

    @property
    def uow_factory(self):
        return self.container.uow_factory()

    async def deliver_webhooks(self) -> int:
        if self.stripe is None:
            return 0
        events = self.stripe.events[self.delivered :]
        if not self.webhooks:
            self.delivered += len(events)
            return 0
        for event in events:
            await deliver_stripe_event(self.container, self.stripe, event, self.secret)
        self.delivered += len(events)
        return len(events)

    async def catch_up(self, owner: str = "worker-1", overlap: float = 120.0):
        """One catch-up poll of Stripe's events, as the worker's catch-up task of ``owner`` makes it."""
        from application.sync.catchup import RecentlyPublished, catch_up_once

        c = self.container
        recently = self._published.setdefault(owner, RecentlyPublished())
        return await catch_up_once(
            c.integrations()["stripe"], c.uow_factory(), c.publisher(), self.clock, owner, overlap, recently=recently
        )

    async def relay(self) -> int:
        """Publish what the outbox holds."""
        return await relay_once(self.container.uow_factory(), self.container.publisher(), self.clock)

    async def consume(self) -> int:
        """Let the worker handle what is on the topics now."""
        return await self.consumer.run_once(self.stopping)

    async def settle(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            moved = await self.relay()
            moved += await self.consume()
            moved += await self.deliver_webhooks()
            if not moved:
                return
        raise AssertionError(f"the system did not settle within {rounds} rounds")

    async def customer(self, customer_id: int):
        async with self.uow_factory() as uow:
            return await uow.customers.get(customer_id)

    async def mapping(self, customer_id: int, system: str = "stripe"):
        async with self.uow_factory() as uow:
            return await uow.mappings.get(customer_id, system)

    async def history(self, customer_id: int):
        async with self.uow_factory() as uow:
            return await uow.sync_records.for_customer(customer_id, 100)

    def messages(self, topic: str):
        return self.container.broker().messages(topic)

    async def context(self, policy=None):
        """What the sync use cases take besides the message (as the worker's handlers build it)."""
        from application.sync.context import SyncContext

        settings = self.container.settings()
        return SyncContext(
            self.uow_factory,
            self.clock,
            policy or settings.conflict_policy,
            await self.installation(),
            self.container.account_guard(),
        )

    async def installation(self) -> str:
        return await self.container.identity().id()

    async def tags(self, customer_id: int, **other: str) -> dict[str, str]:
        """The metadata we write on a Stripe customer of ours (its create key aside: see ``tagged``)."""
        return {"internal_id": str(customer_id), "custsync_installation": await self.installation(), **other}


def tagged(metadata: dict[str, str]) -> dict[str, str]:
    """Metadata without the create key (a random key each create writes): what tests compare."""
    return {k: v for k, v in metadata.items() if k != "custsync_create"}
