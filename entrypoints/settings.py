"""The one place configuration is read: environment variables, each described here once. The
configuration reference, `.env.example` and the compose file are checked against this class
(tests/unit/test_configuration_sources.py)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Annotated

import msgspec

from domain.conflicts import ConflictPolicy
from domain.retention import MIN_RETENTION_DAYS


class SettingsError(ValueError):
    pass


def setting(group: str, description: str) -> msgspec.Meta:
    """A setting's place in the configuration reference (docs/reference/configuration.md, made
    from this class by docs/gen_reference.py) and what it says there."""
    return msgspec.Meta(description=" ".join(description.split()), extra={"group": group})


# The reference lists the groups in this order.
GROUPS = ("Storage and messaging", "Stripe", "Salesforce", "API", "Sync", "Worker", "Operations")
STORAGE, STRIPE, SALESFORCE, API, SYNC, WORKER, OPERATIONS = GROUPS


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting custsync reads, each from the environment variable of its name in capitals."""

    database_url: Annotated[
        str,
        setting(
            STORAGE,
            """
        `postgresql+asyncpg://user:password@host:port/database`. `memory://` keeps everything in the
        process: only for `custsync dev`.""",
        ),
    ] = "memory://"
    kafka_bootstrap_servers: Annotated[
        str,
        setting(
            STORAGE,
            """
        `host:port[,host:port]` of the Kafka brokers; `memory://` with `DATABASE_URL=memory://` only.""",
        ),
    ] = "memory://"
    db_pool_size: Annotated[
        int,
        setting(
            STORAGE,
            """
        PostgreSQL connections per process, and as many again in bursts.""",
        ),
    ] = 10
    db_pool_timeout: Annotated[
        float,
        setting(
            STORAGE,
            """
        Seconds a request waits for a free connection before the API answers `503` with
        `Retry-After` (no queue builds up).""",
        ),
    ] = 3.0
    kafka_partitions: Annotated[
        int,
        setting(
            STORAGE,
            """
        Partitions of each sync topic that `custsync topics` (and `init`) creates.""",
        ),
    ] = 6
    kafka_replication_factor: Annotated[
        int,
        setting(
            STORAGE,
            """
        Replicas of each sync topic that `custsync topics` (and `init`) creates: 3 on a production
        cluster, at most the number of brokers.""",
        ),
    ] = 1
    kafka_group_id: Annotated[
        str,
        setting(
            STORAGE,
            """
        The workers' consumer group for `sync.inbound`; each integration reads `sync.outbound` as
        `<KAFKA_GROUP_ID>.<system>`.""",
        ),
    ] = "custsync-worker"
    stripe_secret_key: Annotated[
        str,
        setting(
            STRIPE,
            """
        A secret (`sk_test_`, `sk_live_`) or restricted (`rk_...`) key; its mode is the one the
        catalog binds to. Required by `api` and `worker` on real storage; unset in `custsync dev`, an
        in-memory Stripe stands in. A publishable key (`pk_...`) is refused.""",
        ),
    ] = ""
    stripe_webhook_secret: Annotated[
        str,
        setting(
            STRIPE,
            """
        The webhook endpoint's signing secret (`whsec_...`); webhooks are refused without it.""",
        ),
    ] = ""
    stripe_webhook_secret_previous: Annotated[
        str,
        setting(
            STRIPE,
            """
        The endpoint's previous signing secret, still accepted while you roll it.""",
        ),
    ] = ""
    stripe_webhook_tolerance: Annotated[
        int,
        setting(
            STRIPE,
            """
        Seconds a webhook signature's timestamp may be old.""",
        ),
    ] = 300
    stripe_api_base: Annotated[
        str,
        setting(
            STRIPE,
            """
        Another Stripe-compatible server to call instead of api.stripe.com (a test server).""",
        ),
    ] = ""
    stripe_max_rps: Annotated[
        float,
        setting(
            STRIPE,
            """
        Stripe requests per second for the whole account, shared by every process through
        PostgreSQL: Stripe's limit is 25 in test mode, 100 live. Give every process the same value.""",
        ),
    ] = 25.0
    stripe_timeout: Annotated[float, setting(STRIPE, "Seconds per Stripe request.")] = 20.0
    integrations: Annotated[
        str,
        setting(
            SYNC,
            """
        The systems the catalog syncs with, comma-separated, in the order each change is sent:
        `stripe`, `salesforce` (`custsync dev`: both).""",
        ),
    ] = "stripe"
    salesforce_instance_url: Annotated[
        str,
        setting(
            SALESFORCE,
            """
        The org's My Domain URL, `https://<MyDomain>.my.salesforce.com`. Required by `api` and
        `worker` on real storage when `salesforce` is in `INTEGRATIONS`; unset in `custsync dev`, an
        in-memory org stands in.""",
        ),
    ] = ""
    salesforce_client_id: Annotated[
        str,
        setting(
            SALESFORCE,
            """
        The connected app's consumer key (OAuth client-credentials flow).""",
        ),
    ] = ""
    salesforce_client_secret: Annotated[str, setting(SALESFORCE, "The connected app's consumer secret.")] = ""
    salesforce_api_version: Annotated[str, setting(SALESFORCE, "The REST API version, like `62.0`.")] = "62.0"
    salesforce_external_id_field: Annotated[
        str,
        setting(
            SALESFORCE,
            """
        The Contact field (Text 255, External ID, Unique) that holds `<installation>-<catalog id>`.""",
        ),
    ] = "Custsync_Id__c"
    salesforce_create_key_field: Annotated[
        str,
        setting(
            SALESFORCE,
            """
        The Contact field (Text 255) that holds the key of the create that made the Contact.""",
        ),
    ] = "Custsync_Create__c"
    salesforce_max_rps: Annotated[
        float,
        setting(
            SALESFORCE,
            """
        Salesforce requests per second across every process (the org's own allowance is per
        rolling 24 hours).""",
        ),
    ] = 10.0
    salesforce_timeout: Annotated[float, setting(SALESFORCE, "Seconds per Salesforce request.")] = 20.0
    api_token: Annotated[
        str,
        setting(
            API,
            """
        The bearer token every `/api/v1` route asks for (`Authorization: Bearer <API_TOKEN>`), but
        the webhooks, which are signed. Required by `custsync api` on real storage, and by
        `custsync dev` off this machine. Generate one with `openssl rand -hex 32`; the example's
        placeholder is refused.""",
        ),
    ] = ""
    api_auth: Annotated[
        str,
        setting(
            API,
            """
        `token` (API_TOKEN required where it says), or `none`: the API serves without
        authentication, for when something in front authenticates (said at start-up). Cannot be
        combined with `API_TOKEN`.""",
        ),
    ] = "token"
    max_body_bytes: Annotated[int, setting(API, "The largest request body the catalog API accepts.")] = 64 * 1024
    conflict_policy: Annotated[
        ConflictPolicy,
        setting(
            SYNC,
            """
        Who wins when both sides changed a field: `latest_wins` (the later change by each
        system's clock), `internal_wins` (the catalog) or `external_wins` (the system written to;
        `stripe_wins` is its old name).""",
        ),
    ] = ConflictPolicy.LATEST_WINS
    catchup_interval: Annotated[
        float,
        setting(
            SYNC,
            """
        Seconds between polls of each system's change log for what webhooks missed (Salesforce's
        changes arrive this way); `0` turns catch-up off.""",
        ),
    ] = 60.0
    catchup_overlap: Annotated[
        float,
        setting(
            SYNC,
            """
        Seconds each poll reads back before the newest change it saw.""",
        ),
    ] = 120.0
    reconcile_interval: Annotated[
        float,
        setting(
            SYNC,
            """
        Seconds between scheduled reconcile runs (a full comparison that fixes drift, without
        matching by email); `0`: none; otherwise at least 60.""",
        ),
    ] = 0.0
    retention_days: Annotated[
        int,
        setting(
            SYNC,
            f"""
        Days the worker keeps published outbox events, inbox entries, succeeded sync records and
        replayed dead letters, and after which it scrubs a deleted customer's personal data; `0`
        keeps everything forever; otherwise at least {MIN_RETENTION_DAYS}.""",
        ),
    ] = 30
    worker_concurrency: Annotated[
        int,
        setting(
            WORKER,
            """
        Deliveries of different customers handled at once per worker and consumer group (one
        customer's always one at a time, in order): enough to spend `STRIPE_MAX_RPS` at real Stripe
        latency.""",
        ),
    ] = 32
    worker_max_attempts: Annotated[
        int,
        setting(
            WORKER,
            """
        Attempts before an unexpected error (a bug, not an outage) is dead-lettered. Outages are
        waited out and never counted.""",
        ),
    ] = 5
    worker_retry_max_delay: Annotated[
        float,
        setting(
            WORKER,
            """
        The backoff cap, in seconds, while a system is down.""",
        ),
    ] = 30.0
    kafka_max_poll_interval_ms: Annotated[
        int,
        setting(
            WORKER,
            """
        The longest a worker may go without fetching before its group moves its partitions.""",
        ),
    ] = 300_000
    kafka_session_timeout_ms: Annotated[
        int,
        setting(
            WORKER,
            """
        How soon a crashed worker's partitions move to the others.""",
        ),
    ] = 10_000
    kafka_heartbeat_interval_ms: Annotated[
        int,
        setting(
            WORKER,
            """
        Heartbeats to the group coordinator (in the background, also while a partition is
        paused).""",
        ),
    ] = 3_000
    log_level: Annotated[str, setting(OPERATIONS, "`DEBUG`, `INFO`, `WARNING` or `ERROR`.")] = "INFO"
    log_format: Annotated[
        str,
        setting(
            OPERATIONS,
            """
        `text`: one readable line per record; `json`: one JSON object per line, with the correlation
        id and the fields of the work in hand.""",
        ),
    ] = "text"
    metrics_port: Annotated[
        int,
        setting(
            OPERATIONS,
            """
        The worker's operations listener (`/health`, `/ready`, `/metrics`, and the status sampled into
        the gauges); `0` is off. Compose sets 9100.""",
        ),
    ] = 0
    metrics_host: Annotated[
        str,
        setting(
            OPERATIONS,
            """
        Where that listener binds (compose: `0.0.0.0`, inside the compose network).""",
        ),
    ] = "127.0.0.1"
    metrics_interval: Annotated[
        float,
        setting(
            OPERATIONS,
            """
        Seconds between the worker's samples of backlog, lag, dead letters and drift into its
        gauges; 1 to 3600.""",
        ),
    ] = 15.0

    @property
    def webhook_secrets(self) -> list[str]:
        return [s for s in (self.stripe_webhook_secret, self.stripe_webhook_secret_previous) if s]

    @property
    def uses_memory(self) -> bool:
        return self.database_url.startswith("memory:")

    @property
    def storage_backend(self) -> str:
        return "memory" if self.uses_memory else "postgres"

    @property
    def broker_backend(self) -> str:
        return "memory" if self.kafka_bootstrap_servers.startswith("memory:") else "kafka"

    @property
    def integration_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.integrations.split(",") if name.strip())

    @property
    def salesforce_backend(self) -> str:
        """``http`` (the org at SALESFORCE_INSTANCE_URL), else the in-memory stand-in."""
        return "http" if self.salesforce_instance_url else "memory"

    @property
    def stripe_backend(self) -> str:
        """``sdk`` (the real API, or STRIPE_API_BASE) with a key, else the in-memory stand-in."""
        return "sdk" if self.stripe_secret_key else "memory"


ENV_NAMES = {name.upper(): name for name in Settings.__struct_fields__}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from ``environ`` (default: the process environment); a bad value fails at start-up."""
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {field: environ[env] for env, field in ENV_NAMES.items() if env in environ}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    if raw.get("conflict_policy") == "stripe_wins":  # the name external_wins had with Stripe alone
        raw["conflict_policy"] = ConflictPolicy.EXTERNAL_WINS.value
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        message = re.sub(r"`\$\.(\w+)`", lambda m: m.group(1).upper(), str(exc))
        raise SettingsError(f"invalid configuration: {message}") from exc
    if settings.stripe_max_rps <= 0 or settings.max_body_bytes <= 0 or settings.kafka_partitions <= 0:
        raise SettingsError("STRIPE_MAX_RPS, MAX_BODY_BYTES and KAFKA_PARTITIONS must be positive")
    if settings.kafka_replication_factor < 1:
        raise SettingsError("KAFKA_REPLICATION_FACTOR must be at least 1")
    _check_secrets(settings)
    if settings.db_pool_size < 1 or settings.db_pool_timeout <= 0:
        raise SettingsError("DB_POOL_SIZE and DB_POOL_TIMEOUT must be positive")
    if settings.worker_max_attempts < 1 or settings.worker_retry_max_delay <= 0:
        raise SettingsError("WORKER_MAX_ATTEMPTS and WORKER_RETRY_MAX_DELAY must be positive")
    if not 0 <= settings.metrics_port <= 65535:
        raise SettingsError("METRICS_PORT must be 0 (off) or a TCP port")
    if not 1 <= settings.metrics_interval <= 3600:
        raise SettingsError("METRICS_INTERVAL must be between 1 and 3600 seconds")
    if not 1 <= settings.worker_concurrency <= 1000:
        raise SettingsError("WORKER_CONCURRENCY must be between 1 and 1000")
    if not 0 < settings.kafka_heartbeat_interval_ms < settings.kafka_session_timeout_ms <= settings.kafka_max_poll_interval_ms:
        raise SettingsError("need 0 < KAFKA_HEARTBEAT_INTERVAL_MS < KAFKA_SESSION_TIMEOUT_MS <= KAFKA_MAX_POLL_INTERVAL_MS")
    if not 0 <= settings.reconcile_interval < math.inf:
        raise SettingsError("RECONCILE_INTERVAL must be 0 (off) or a number of seconds")
    if 0 < settings.reconcile_interval < 60:
        raise SettingsError("RECONCILE_INTERVAL must be at least 60 seconds (each run lists every external record)")
    if not 0 <= settings.catchup_interval < math.inf or not 0 <= settings.catchup_overlap < math.inf:
        raise SettingsError("CATCHUP_INTERVAL and CATCHUP_OVERLAP must be 0 or more (CATCHUP_INTERVAL=0 turns catch-up off)")
    if settings.log_format not in ("text", "json"):
        raise SettingsError("LOG_FORMAT must be `text` (the default) or `json`")
    if settings.retention_days != 0 and not MIN_RETENTION_DAYS <= settings.retention_days <= 36_500:
        raise SettingsError(
            f"RETENTION_DAYS must be 0 (keep everything) or from {MIN_RETENTION_DAYS} (the inbox must outlive the "
            f"{MIN_RETENTION_DAYS} days in which Stripe may deliver an event again) to 36500"
        )
    _check_integrations(settings)
    if settings.api_auth not in ("token", "none"):
        raise SettingsError("API_AUTH must be `token` (the default: API_TOKEN required) or `none`")
    if settings.api_auth == "none" and settings.api_token:
        raise SettingsError("API_AUTH=none and API_TOKEN are both set: choose one")
    if not settings.uses_memory and not settings.database_url.startswith("postgresql+asyncpg://"):
        raise SettingsError("DATABASE_URL must look like postgresql+asyncpg://user:password@host:port/database")
    if (settings.storage_backend == "memory" and settings.broker_backend == "kafka") or (
        settings.storage_backend == "postgres" and settings.broker_backend == "memory"
    ):
        raise SettingsError("set both DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS, or neither (in-memory, for custsync dev)")
    return settings


# What a copied example or a tutorial leaves in place of a real token.
_PLACEHOLDER = re.compile(r"change-?me|replace-?me|your[-_]?token|<.*>|\.\.\.", re.IGNORECASE)
# Stripe's key kinds by prefix: secret and restricted keys call the API; a publishable key (pk_)
# only tokenises cards in a browser, and a webhook secret (whsec_) only signs.
_STRIPE_KEY = re.compile(r"(sk|rk)_(test|live)_[A-Za-z0-9]+")


def _check_secrets(settings: Settings) -> None:
    if settings.api_token and _PLACEHOLDER.search(settings.api_token):
        raise SettingsError("API_TOKEN is a placeholder, not a token: generate one with `openssl rand -hex 32`")
    key = settings.stripe_secret_key
    if key and not _STRIPE_KEY.fullmatch(key):
        kind = (
            "a publishable key (pk_...)"
            if key.startswith("pk_")
            else ("a webhook signing secret (whsec_...)" if key.startswith("whsec_") else "not a Stripe API key")
        )
        raise SettingsError(
            f"STRIPE_SECRET_KEY is {kind}: custsync needs a secret key (sk_test_..., sk_live_...) "
            "or a restricted key (rk_...) from the dashboard's API keys page"
        )
    for name, secret in (
        ("STRIPE_WEBHOOK_SECRET", settings.stripe_webhook_secret),
        ("STRIPE_WEBHOOK_SECRET_PREVIOUS", settings.stripe_webhook_secret_previous),
    ):
        if secret.startswith(("sk_", "rk_", "pk_")):
            raise SettingsError(f"{name} holds an API key: it takes the endpoint's signing secret (whsec_...)")


KNOWN_INTEGRATIONS = ("stripe", "salesforce")
_SALESFORCE_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,36}__c")


def _check_integrations(settings: Settings) -> None:
    names = settings.integration_names
    unknown = [n for n in names if n not in KNOWN_INTEGRATIONS]
    if not names or unknown or len(set(names)) != len(names):
        raise SettingsError(
            f"INTEGRATIONS must name each of {', '.join(KNOWN_INTEGRATIONS)} at most once, comma-separated "
            f"(got {settings.integrations!r})"
        )
    if "salesforce" not in names:
        return
    if settings.salesforce_instance_url:
        url = settings.salesforce_instance_url
        local = url.startswith(("http://127.0.0.1", "http://localhost"))  # a test server
        if not (url.startswith("https://") or local) or any(c in url for c in "?# "):
            raise SettingsError("SALESFORCE_INSTANCE_URL must be the org's https URL (https://<MyDomain>.my.salesforce.com)")
        if not settings.salesforce_client_id or not settings.salesforce_client_secret:
            raise SettingsError(
                "SALESFORCE_INSTANCE_URL is set: SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET are needed too"
            )
    if not re.fullmatch(r"[1-9][0-9]\.0", settings.salesforce_api_version):
        raise SettingsError("SALESFORCE_API_VERSION must look like 62.0")
    fields = (settings.salesforce_external_id_field, settings.salesforce_create_key_field)
    if not all(_SALESFORCE_FIELD.fullmatch(f) for f in fields) or fields[0] == fields[1]:
        raise SettingsError(
            "SALESFORCE_EXTERNAL_ID_FIELD and SALESFORCE_CREATE_KEY_FIELD must be two custom field API names (Name__c)"
        )
    if not 0 < settings.salesforce_max_rps < math.inf or not 0 < settings.salesforce_timeout < math.inf:
        raise SettingsError("SALESFORCE_MAX_RPS and SALESFORCE_TIMEOUT must be positive")
