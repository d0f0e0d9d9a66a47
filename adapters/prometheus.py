"""The metrics port and the processes' own figures in Prometheus (``prometheus-client``).

Every name has the ``custsync_`` prefix and its unit; label values are bounded (topics, systems,
outcomes, status classes), never a customer or an event. Each container has its own registry,
so that tests can build many; ``custsync api --workers N`` shares its processes' figures through
``PROMETHEUS_MULTIPROC_DIR`` (set by the parent before the processes start, see ``exposition``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from application.status import StatusReport
from application.sync.retention import RetentionPass
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC, REJECTED_WEBHOOK_TOPIC
from domain.sync import Handled

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# From a webhook's few milliseconds to a change that waited out an outage.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def new_registry() -> CollectorRegistry:
    """A registry with the process, platform and GC collectors, as the default one has them."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text format of ``registry`` -- or, when the API runs as several processes, of every
    process's figures merged (the registry of one process would show a random worker's share)."""
    if os.environ.get(MULTIPROCESS_ENV):
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # prometheus_client: MultiProcessCollector.__init__ has no annotations
        return generate_latest(merged), CONTENT_TYPE_LATEST
    return generate_latest(registry), CONTENT_TYPE_LATEST


def status_class(status: int | None) -> str:
    """``2xx``, ``4xx``, ``5xx``; ``429`` apart from the other 4xx (the rate limit); ``network``:
    no answer at all (a timeout, a connection refused or cut)."""
    if status is None:
        return "network"
    if status == 429:
        return "429"
    return f"{status // 100}xx"


class PrometheusMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        def counter(name: str, doc: str, labels: Iterable[str]) -> Counter:
            return Counter(name, doc, list(labels), registry=registry)

        def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
            return Gauge(name, doc, list(labels), registry=registry, multiprocess_mode="mostrecent")

        # The worker: deliveries and what they came to.
        self.deliveries = counter(
            "custsync_deliveries_total",
            "Deliveries of sync.outbound/sync.inbound by outcome: synced, unchanged, echo, conflict, duplicate (per "
            "system reached); retried (a failed attempt waiting to be tried again); dead (dead-lettered)",
            ("topic", "outcome"),
        )
        self.latency = Histogram(
            "custsync_sync_latency_seconds",
            "From a change to its settling: outbound, catalog commit to the external system's answer; inbound, the "
            "external event's time to the catalog commit",
            ["direction", "system"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.dead_letters = counter("custsync_dead_letters_stored_total", "Messages stored as dead letters", ("topic",))
        self.replays = counter("custsync_dead_letters_replayed_total", "Dead letters published again", ("topic",))
        self.catchup_polls = counter(
            "custsync_catchup_polls_total", "Catch-up polls by result (ok, failed)", ("system", "result")
        )
        self.catchup_changes = counter(
            "custsync_catchup_changes_total",
            "Changes catch-up listed, and of those the ones it published (missed by webhooks)",
            ("system", "kind"),
        )
        self.reconcile_runs = counter("custsync_reconcile_runs_total", "Reconcile runs ended, by status", ("system", "status"))
        self.reconcile_found = counter(
            "custsync_reconcile_findings_total", "What reconcile runs found and fixed, by kind", ("system", "kind")
        )
        self.retention_rows = counter(
            "custsync_retention_rows_deleted_total", "Rows retention passes deleted, by table", ("table",)
        )
        self.retention_scrubbed = Counter(
            "custsync_retention_customers_scrubbed_total",
            "Deleted customers whose personal data retention scrubbed",
            registry=registry,
        )
        # External systems (in every process that calls one).
        self.requests = counter(
            "custsync_external_requests_total",
            "Calls to an external system's API by method and status class (2xx, 4xx, 429, 5xx, network)",
            ("system", "method", "status_class"),
        )
        self.request_time = Histogram(
            "custsync_external_request_duration_seconds",
            "Time an external API call took (its SDK retries included)",
            ["system", "method"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.rate_wait = Histogram(
            "custsync_rate_limit_wait_seconds",
            "Time a call waited for its slot in the account's request budget",
            ["system"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        # What the system itself says is left of its API allowance (Salesforce: Sforce-Limit-Info,
        # the org's rolling 24 h); set at every answer that carries it.
        self.api_remaining = gauge(
            "custsync_external_api_calls_remaining",
            "Calls left in the system's own API allowance (Salesforce: per rolling 24 h)",
            ("system",),
        )
        self.api_limit = gauge(
            "custsync_external_api_calls_limit",
            "The system's own API allowance (Salesforce: calls per rolling 24 h)",
            ("system",),
        )
        # The API.
        self.webhooks = counter(
            "custsync_webhooks_received_total",
            "Webhooks received, by result (accepted, ignored, rejected)",
            ("system", "result"),
        )
        self.webhook_rejections = counter(
            "custsync_webhooks_rejected_total",
            "Webhooks rejected, by reason (signature, malformed, refused, not_configured, unknown_system)",
            ("system", "reason"),
        )
        # Sampled from the database and the broker (the worker, every METRICS_INTERVAL).
        self.backlog = gauge("custsync_outbox_backlog_events", "Catalog changes in the outbox not yet published")
        self.oldest = gauge("custsync_outbox_oldest_event_age_seconds", "Age of the oldest unpublished outbox event (0: none)")
        self.lag = gauge(
            "custsync_consumer_lag_messages",
            "Messages on a partition a worker group has not committed (system: where its work lands, catalog for sync.inbound)",
            ("topic", "partition", "system"),
        )
        self.waiting_letters = gauge("custsync_dead_letters_waiting", "Dead letters not replayed", ("topic",))
        self.out_of_sync = gauge(
            "custsync_customers_out_of_sync",
            "Catalog customers not in sync with a system, by status (pending, retrying, dead, broken, unlinked)",
            ("system", "status"),
        )
        self.last_success = gauge(
            "custsync_last_success_timestamp_seconds",
            "When a change last settled at a system (Unix time)",
            ("system", "direction"),
        )
        self.sampled = gauge("custsync_status_sampled_timestamp_seconds", "When the sampled figures were last read")

    # -- application.ports.SyncMetrics -----------------------------------------------------------

    def handled(self, topic: str, handled: Handled) -> None:
        self.deliveries.labels(topic, handled.outcome.value).inc()
        if handled.latency is not None:
            self.latency.labels(handled.direction.value, handled.system).observe(handled.latency)

    def retried(self, topic: str, failure: str) -> None:
        self.deliveries.labels(topic, "retried").inc()

    def dead_lettered(self, topic: str) -> None:
        self.deliveries.labels(topic, "dead").inc()
        self.dead_letters.labels(topic).inc()

    def replayed(self, topic: str) -> None:
        self.replays.labels(topic).inc()

    def caught_up(self, system: str, *, listed: int, published: int, failed: bool) -> None:
        self.catchup_polls.labels(system, "failed" if failed else "ok").inc()
        self.catchup_changes.labels(system, "listed").inc(listed)
        self.catchup_changes.labels(system, "published").inc(published)

    def reconciled(self, system: str, status: str, counts: Mapping[str, int]) -> None:
        self.reconcile_runs.labels(system, status).inc()
        for kind, n in counts.items():
            self.reconcile_found.labels(system, kind).inc(n)

    def retained(self, done: RetentionPass) -> None:
        for table in ("outbox", "inbox", "sync_records", "dead_letters"):
            self.retention_rows.labels(table).inc(getattr(done, table))
        self.retention_scrubbed.inc(done.customers_scrubbed)

    # -- the adapters' and the API's own --------------------------------------------------------

    def external_request(self, system: str, method: str, status: int | None, seconds: float) -> None:
        self.requests.labels(system, method, status_class(status)).inc()
        self.request_time.labels(system, method).observe(seconds)

    def rate_limit_waited(self, system: str, seconds: float) -> None:
        self.rate_wait.labels(system).observe(seconds)

    def api_usage(self, system: str, used: int, limit: int) -> None:
        self.api_remaining.labels(system).set(max(limit - used, 0))
        self.api_limit.labels(system).set(limit)

    def webhook(self, system: str, result: str, reason: str | None = None) -> None:
        self.webhooks.labels(system, result).inc()
        if reason is not None:
            self.webhook_rejections.labels(system, reason).inc()

    # -- sampled: the worker reads application.status every METRICS_INTERVAL ---------------------

    def observe_status(self, report: StatusReport) -> None:
        self.backlog.set(report.outbox_backlog)
        self.oldest.set(report.outbox_oldest_age_seconds)
        # Partitions come and go (a topic repartitioned), and a lag the broker could not tell is
        # unknown, not the last figure: no stale series either way.
        self.lag.clear()
        if report.lag is not None:
            for group, lag in report.lag.items():
                for where, n in lag.items():
                    topic, _, partition = where.rpartition(":")
                    self.lag.labels(topic, partition, group).set(n)
        for topic in {INBOUND_TOPIC, OUTBOUND_TOPIC, REJECTED_WEBHOOK_TOPIC, *report.dead_letters_waiting}:
            self.waiting_letters.labels(topic).set(report.dead_letters_waiting.get(topic, 0))
        for system in report.integrations:
            for status, n in system.out_of_sync.items():
                self.out_of_sync.labels(system.system, status).set(n)
            for direction, at in (("outbound", system.activity.last_outbound), ("inbound", system.activity.last_inbound)):
                if at is not None:
                    self.last_success.labels(system.system, direction).set(at.timestamp())
        self.sampled.set(report.at.timestamp())
