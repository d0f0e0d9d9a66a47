"""The composition root: the one place that builds the object graph from settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx
from dependency_injector import containers, providers

from adapters.budget import Ledger, RateBudget
from adapters.memory.bus import InMemoryBroker
from adapters.memory.database import InMemoryDatabase
from adapters.memory.salesforce import InMemorySalesforce
from adapters.memory.stripe import InMemoryStripe
from adapters.postgres.engine import create_engine
from adapters.prometheus import PrometheusMetrics, new_registry
from adapters.salesforce.auth import ClientCredentials
from adapters.stripe.integration import key_mode
from adapters.stripe.limiter import RateLimited
from adapters.stripe.sdk import stripe_client
from application.accounts import AccountGuard, InstallationIdentity
from application.ports import ConsumerLag, Integration, MessageSource, UnitOfWorkFactory
from application.sync.consumer import RetryPolicy, SyncConsumer, TopicHandler
from application.sync.context import SyncContexts
from application.sync.groups import CATALOG, SyncConsumers, SyncGroup
from application.sync.groups import sync_groups as groups_for
from application.sync.handlers import InboundHandler, OutboundHandler
from application.sync.relay import OutboxWakeup
from entrypoints import factories as f
from entrypoints.factories import CheckedPublisher, select
from entrypoints.settings import Settings


def enabled(names: tuple[str, ...], **builders: Callable[[], Integration]) -> dict[str, Integration]:
    """The integrations INTEGRATIONS names, in its order; the others are never built."""
    return {name: builders[name]() for name in names}


class Container(containers.DeclarativeContainer):
    """Each adapter is built by a factory that returns the port it implements (entrypoints.factories),
    and each choice of backend is a ``select`` of one port: mypy checks every adapter against its port."""

    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(f.system_clock)
    # This process's figures (GET /metrics); every container its own registry.
    metrics_registry = providers.Singleton(new_registry)
    metrics = providers.Singleton(PrometheusMetrics, metrics_registry)

    # Storage: PostgreSQL, or in memory for `custsync dev` and unit tests.
    database = providers.Singleton(InMemoryDatabase)
    engine = providers.Singleton(
        create_engine, settings.provided.database_url, settings.provided.db_pool_size, settings.provided.db_pool_timeout
    )
    uow_factory: providers.Provider[UnitOfWorkFactory] = select(
        settings.provided.storage_backend,
        memory=providers.Callable(f.memory_units_of_work, database),
        postgres=providers.Singleton(f.postgres_units_of_work, engine),
    )
    outbox_wakeup: providers.Provider[OutboxWakeup] = select(
        settings.provided.storage_backend,
        memory=providers.Singleton(f.memory_wakeup, database),
        postgres=providers.Singleton(f.postgres_wakeup, settings.provided.database_url),
    )

    # Messaging: Kafka, or the in-memory broker. The worker reads with one consumer group per
    # destination (application.sync.groups): sync.inbound for the catalog, sync.outbound per system.
    broker = providers.Singleton(InMemoryBroker, partitions=settings.provided.kafka_partitions)
    publisher: providers.Provider[CheckedPublisher] = select(
        settings.provided.broker_backend,
        memory=providers.Singleton(f.memory_publisher, broker),
        kafka=providers.Singleton(f.kafka_publisher, settings.provided.kafka_bootstrap_servers),
    )
    sync_groups = providers.Singleton(groups_for, settings.provided.kafka_group_id, settings.provided.integration_names)
    subscription: providers.Provider[MessageSource] = select(  # called with topics= and group_id= of one SyncGroup
        settings.provided.broker_backend,
        memory=providers.Factory(f.memory_subscription, broker),
        kafka=providers.Factory(
            f.kafka_subscription,
            settings.provided.kafka_bootstrap_servers,
            max_poll_interval_ms=settings.provided.kafka_max_poll_interval_ms,
            session_timeout_ms=settings.provided.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.provided.kafka_heartbeat_interval_ms,
        ),
    )

    consumer_lag: providers.Provider[ConsumerLag] = select(
        settings.provided.broker_backend,
        memory=providers.Singleton(f.memory_lag, broker, sync_groups),
        kafka=providers.Singleton(f.kafka_lag, settings.provided.kafka_bootstrap_servers, sync_groups),
    )

    # Integrations, keyed by system name: a new one is one more entry here, nothing else changes.
    # The in-memory Stripe stand-in serves `custsync dev` and tests only: the CLI refuses to run
    # `api`/`worker` on real storage without STRIPE_SECRET_KEY.
    stripe_sdk = providers.Singleton(
        stripe_client,
        settings.provided.stripe_secret_key,
        api_base=settings.provided.stripe_api_base,
        timeout=settings.provided.stripe_timeout,
    )
    # One request budget for the whole Stripe account: its ledger of time slots is shared through
    # PostgreSQL by every worker, CLI and API process (in memory: this process alone).
    stripe_ledger: providers.Provider[Ledger] = select(
        settings.provided.storage_backend,
        memory=providers.Singleton(f.memory_ledger, settings.provided.stripe_max_rps, clock),
        postgres=providers.Singleton(f.postgres_ledger, engine, "stripe", settings.provided.stripe_max_rps),
    )
    stripe_bucket = providers.Singleton(RateBudget, settings.provided.stripe_max_rps, clock, stripe_ledger)
    stripe_customers = providers.Selector(
        settings.provided.stripe_backend,
        memory=providers.Singleton(InMemoryStripe, clock),
        sdk=providers.Singleton(RateLimited, stripe_sdk.provided.v1.customers, stripe_bucket, metrics, "customers"),
    )
    stripe_accounts = providers.Selector(
        settings.provided.stripe_backend,
        memory=providers.Callable(f.stand_in_accounts, stripe_customers),
        sdk=providers.Singleton(RateLimited, stripe_sdk.provided.v1.accounts, stripe_bucket, metrics, "accounts"),
    )
    stripe_events = providers.Selector(
        settings.provided.stripe_backend,
        memory=providers.Callable(f.stand_in_events, stripe_customers),
        sdk=providers.Singleton(RateLimited, stripe_sdk.provided.v1.events, stripe_bucket, metrics, "events"),
    )
    stripe_raw = providers.Selector(
        settings.provided.stripe_backend,
        memory=providers.Object(None),
        sdk=providers.Singleton(RateLimited, stripe_sdk, stripe_bucket, metrics),
    )
    stripe_mode = providers.Selector(
        settings.provided.stripe_backend,
        memory=providers.Object("test"),
        sdk=providers.Callable(key_mode, settings.provided.stripe_secret_key),
    )
    stripe = providers.Singleton(
        f.stripe_integration,
        customers=stripe_customers,
        accounts=stripe_accounts,
        events=stripe_events,
        raw=stripe_raw,
        mode=stripe_mode,
        webhook_secrets=settings.provided.webhook_secrets,
        tolerance=settings.provided.stripe_webhook_tolerance,
    )

    # Salesforce: the org at SALESFORCE_INSTANCE_URL, or the in-memory stand-in (an httpx
    # transport: the same adapter runs over both). Its own request budget, like Stripe's.
    salesforce_org = providers.Singleton(
        InMemorySalesforce,
        clock,
        external_id_field=settings.provided.salesforce_external_id_field,
        create_key_field=settings.provided.salesforce_create_key_field,
    )
    salesforce_transport = providers.Selector(
        settings.provided.salesforce_backend,
        memory=providers.Singleton(f.stand_in_transport, salesforce_org),
        http=providers.Object(None),
    )
    salesforce_http = providers.Singleton(
        httpx.AsyncClient, transport=salesforce_transport, timeout=settings.provided.salesforce_timeout
    )
    salesforce_credentials = providers.Singleton(
        ClientCredentials,
        salesforce_http,
        instance_url=providers.Selector(
            settings.provided.salesforce_backend,
            memory=salesforce_org.provided.instance_url,
            http=settings.provided.salesforce_instance_url,
        ),
        client_id=providers.Selector(
            settings.provided.salesforce_backend,
            memory=providers.Object("custsync-dev"),
            http=settings.provided.salesforce_client_id,
        ),
        client_secret=providers.Selector(
            settings.provided.salesforce_backend,
            memory=providers.Object("custsync-dev"),
            http=settings.provided.salesforce_client_secret,
        ),
    )
    salesforce_ledger: providers.Provider[Ledger] = select(
        settings.provided.storage_backend,
        memory=providers.Singleton(f.memory_ledger, settings.provided.salesforce_max_rps, clock),
        postgres=providers.Singleton(f.postgres_ledger, engine, "salesforce", settings.provided.salesforce_max_rps),
    )
    salesforce_bucket = providers.Singleton(RateBudget, settings.provided.salesforce_max_rps, clock, salesforce_ledger)
    salesforce = providers.Singleton(
        f.salesforce_integration,
        salesforce_http,
        salesforce_credentials,
        api_version=settings.provided.salesforce_api_version,
        external_id_field=settings.provided.salesforce_external_id_field,
        create_key_field=settings.provided.salesforce_create_key_field,
        budget=salesforce_bucket,
        metrics=metrics,
    )

    integrations = providers.Singleton(
        enabled, settings.provided.integration_names, stripe=stripe.provider, salesforce=salesforce.provider
    )
    webhook_sources = providers.Singleton(f.webhook_sources, integrations)
    identity = providers.Singleton(InstallationIdentity, uow_factory, clock)
    account_guard = providers.Singleton(AccountGuard, uow_factory, clock)

    # The worker.
    retry_policy = providers.Singleton(
        RetryPolicy, max_attempts=settings.provided.worker_max_attempts, max_delay=settings.provided.worker_retry_max_delay
    )
    # Called with integrations= of the one system its group pushes to (sync_consumers): no default,
    # so that no handler pushes to every system in turn (one system's outage would hold the others).
    sync_contexts = providers.Singleton(
        SyncContexts, uow_factory, clock, settings.provided.conflict_policy, identity, account_guard
    )
    outbound_handler = providers.Factory(OutboundHandler, contexts=sync_contexts)
    inbound_handler = providers.Singleton(InboundHandler, sync_contexts, integrations)
    consumer = providers.Factory(  # called with source= and handlers= of one group (sync_consumers)
        SyncConsumer,
        publisher=publisher,
        uow_factory=uow_factory,
        clock=clock,
        retry=retry_policy,
        concurrency=settings.provided.worker_concurrency,
        metrics=metrics,
    )


def build_container(settings: Settings) -> Container:
    return Container(settings=settings)


def sync_consumers(container: Container, sources: Mapping[str, MessageSource], **options: object) -> SyncConsumers:
    """The worker's consumers: one per group of ``sources`` (keyed by SyncGroup name), the catalog's
    handling sync.inbound, each system's pushing sync.outbound to that system alone. ``options``
    go to every SyncConsumer (tests: retry, batch_size)."""
    integrations = container.integrations()
    consumers = {}
    for group in container.sync_groups():
        if group.name not in sources:
            continue
        handler: TopicHandler
        if group.name == CATALOG:
            handler = container.inbound_handler()
        else:
            handler = container.outbound_handler(integrations={group.name: integrations[group.name]})
        handlers = dict.fromkeys(group.topics, handler)
        consumers[group.name] = container.consumer(source=sources[group.name], handlers=handlers, **options)
    return SyncConsumers(consumers)


def subscribe(container: Container, group: SyncGroup) -> MessageSource:
    """A subscription of ``group`` (not started)."""
    return container.subscription(topics=list(group.topics), group_id=group.group_id)
