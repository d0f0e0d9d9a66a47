"""The container's adapters, each built as the port it implements.

Every factory here is annotated to return a PORT (``application.ports``, ``application.sync``),
never the adapter: mypy checks the adapter against the port at the ``return``, so an adapter
that drifts from its port -- a method renamed, a parameter or a return type changed -- fails the
type check here, before any test runs. ``select`` keeps a ``providers.Selector`` to one port
for every branch (dependency-injector's stubs leave a Selector's branches untyped).

What dependency-injector hands a factory (the providers' arguments) is untyped in its stubs: the
parameter types below say what the container passes, and are not checked against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

import httpx
from dependency_injector import providers
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.budget import InMemoryLedger, Ledger, RateBudget
from adapters.clock import SystemClock
from adapters.kafka.lag import KafkaLag
from adapters.kafka.publisher import KafkaPublisher
from adapters.kafka.subscription import KafkaSubscription
from adapters.memory.bus import InMemoryBroker, InMemoryLag, InMemoryOutboxWakeup, InMemoryPublisher, InMemorySubscription
from adapters.memory.clock import FakeClock
from adapters.memory.database import InMemoryDatabase
from adapters.memory.metrics import InMemoryMetrics
from adapters.memory.salesforce import InMemorySalesforce
from adapters.memory.stripe import InMemoryStripe
from adapters.postgres.budget import PostgresLedger
from adapters.postgres.unit_of_work import SqlAlchemyUnitOfWorkFactory
from adapters.postgres.wakeup import PostgresOutboxWakeup
from adapters.prometheus import PrometheusMetrics
from adapters.salesforce.auth import ClientCredentials
from adapters.salesforce.integration import SalesforceIntegration
from adapters.stripe.integration import AccountsService, CustomersService, EventsService, RawRequests, StripeIntegration
from application.ports import (
    Clock,
    ConsumerLag,
    Integration,
    Integrations,
    MessagePublisher,
    MessageSource,
    SyncMetrics,
    UnitOfWorkFactory,
    WebhookSource,
)
from application.sync.groups import SyncGroup
from application.sync.relay import OutboxWakeup

T = TypeVar("T")


def select(selector: providers.Provider[Any], **branches: providers.Provider[T]) -> providers.Provider[T]:
    """A ``providers.Selector`` whose every branch provides ``T`` (a provider is invariant in what
    it provides: a branch built from an adapter class, not from a factory below, does not fit)."""
    return providers.Selector(selector, **branches)


class CheckedPublisher(MessagePublisher, Protocol):
    """The processes' publisher, which readiness (GET /ready) also asks."""

    async def check(self, topics: Sequence[str], timeout: float) -> None:
        """Raise unless the broker answers and holds ``topics``, within ``timeout`` seconds."""


# -- the clock ---------------------------------------------------------------------------------------
def system_clock() -> Clock:
    return SystemClock()


# -- storage -----------------------------------------------------------------------------------------
def memory_units_of_work(database: InMemoryDatabase) -> UnitOfWorkFactory:
    return database.unit_of_work


def postgres_units_of_work(engine: AsyncEngine) -> UnitOfWorkFactory:
    return SqlAlchemyUnitOfWorkFactory(engine)


def memory_wakeup(database: InMemoryDatabase) -> OutboxWakeup:
    return InMemoryOutboxWakeup(database)


def postgres_wakeup(database_url: str) -> OutboxWakeup:
    return PostgresOutboxWakeup(database_url)


def memory_ledger(rate: float, clock: Clock) -> Ledger:
    return InMemoryLedger(rate, clock)


def postgres_ledger(engine: AsyncEngine, name: str, rate: float) -> Ledger:
    return PostgresLedger(engine, name, rate)


# -- messaging ---------------------------------------------------------------------------------------
def memory_publisher(broker: InMemoryBroker) -> CheckedPublisher:
    return InMemoryPublisher(broker)


def kafka_publisher(bootstrap_servers: str) -> CheckedPublisher:
    return KafkaPublisher(bootstrap_servers)


def memory_subscription(broker: InMemoryBroker, *, topics: Sequence[str], group_id: str) -> MessageSource:
    return InMemorySubscription(broker, topics=topics, group_id=group_id)


def kafka_subscription(
    bootstrap_servers: str,
    *,
    topics: Sequence[str],
    group_id: str,
    max_poll_interval_ms: int,
    session_timeout_ms: int,
    heartbeat_interval_ms: int,
) -> MessageSource:
    return KafkaSubscription(
        bootstrap_servers,
        topics=topics,
        group_id=group_id,
        max_poll_interval_ms=max_poll_interval_ms,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
    )


def memory_lag(broker: InMemoryBroker, groups: Sequence[SyncGroup]) -> ConsumerLag:
    return InMemoryLag(broker, groups)


def kafka_lag(bootstrap_servers: str, groups: Sequence[SyncGroup]) -> ConsumerLag:
    return KafkaLag(bootstrap_servers, groups)


# -- integrations ------------------------------------------------------------------------------------
class WebhookIntegration(Integration, WebhookSource, Protocol):
    """An integration that also sends webhooks (Stripe): checked against both ports."""


def webhook_sources(integrations: Integrations) -> dict[str, WebhookSource]:
    """The enabled integrations that send webhooks: the only ``{system}`` of the webhook route."""
    return {name: integration for name, integration in integrations.items() if isinstance(integration, WebhookSource)}


def stripe_integration(
    *,
    customers: CustomersService,
    accounts: AccountsService,
    events: EventsService | None,
    raw: RawRequests | None,
    mode: str,
    webhook_secrets: Sequence[str],
    tolerance: int,
) -> WebhookIntegration:
    return StripeIntegration(
        customers=customers,
        accounts=accounts,
        events=events,
        raw=raw,
        mode=mode,
        webhook_secrets=webhook_secrets,
        tolerance=tolerance,
    )


def stand_in_accounts(fake: InMemoryStripe) -> AccountsService:
    """The stand-in is one account: it answers GET /v1/account too."""
    return fake


def stand_in_events(fake: InMemoryStripe) -> EventsService:
    return fake.event_api


def stand_in_transport(org: InMemorySalesforce) -> httpx.AsyncBaseTransport:
    """The fake org as an httpx transport: the Salesforce adapter runs over it as over the network."""
    return httpx.MockTransport(org.handle)


def salesforce_integration(
    http: httpx.AsyncClient,
    credentials: ClientCredentials,
    *,
    api_version: str,
    external_id_field: str,
    create_key_field: str,
    budget: RateBudget,
    metrics: PrometheusMetrics,
) -> Integration:
    return SalesforceIntegration(
        http,
        credentials,
        api_version=api_version,
        external_id_field=external_id_field,
        create_key_field=create_key_field,
        budget=budget,
        metrics=metrics,
    )


class StandIns(NamedTuple):
    """The in-memory stand-ins that no factory above returns as a port -- tests build the fake clock
    and the counting metrics themselves; the fake Stripe is served as itself, for the dev routes
    that drive it -- each typed as the port it stands in for, so that mypy checks them too."""

    clock: type[Clock]
    metrics: type[SyncMetrics]
    stripe_customers: type[CustomersService]


STAND_INS = StandIns(clock=FakeClock, metrics=InMemoryMetrics, stripe_customers=InMemoryStripe)
