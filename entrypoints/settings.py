"""The one place configuration is read: environment variables (documented in README and .env.example)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping

import msgspec

from domain.conflicts import ConflictPolicy
from domain.retention import MIN_RETENTION_DAYS


class SettingsError(ValueError):
    pass


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = "memory://"
    kafka_bootstrap_servers: str = "memory://"
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_webhook_secret_previous: str = ""
    stripe_webhook_tolerance: int = 300
    stripe_api_base: str = ""
    stripe_max_rps: float = 25.0
    stripe_timeout: float = 20.0
    # The systems the catalog syncs with, comma-separated: stripe, salesforce (in the order each change is sent).
    integrations: str = "stripe"
    salesforce_instance_url: str = ""  # https://<MyDomain>.my.salesforce.com; unset: the in-memory stand-in (custsync dev)
    salesforce_client_id: str = ""
    salesforce_client_secret: str = ""
    salesforce_api_version: str = "62.0"
    salesforce_external_id_field: str = "Custsync_Id__c"  # Text(255), External ID, Unique: <installation>-<catalog id>
    salesforce_create_key_field: str = "Custsync_Create__c"  # Text(255): the key of the create that made the Contact
    salesforce_max_rps: float = 10.0  # requests per second across every process (the org's own limit is per 24 h)
    salesforce_timeout: float = 20.0
    api_token: str = ""
    api_auth: str = "token"  # "token": API_TOKEN required on real storage; "none": no auth (said at start-up)
    conflict_policy: ConflictPolicy = ConflictPolicy.LATEST_WINS
    log_level: str = "INFO"
    log_format: str = "text"  # "text": one readable line per record; "json": one JSON object per line
    max_body_bytes: int = 64 * 1024
    db_pool_size: int = 10
    db_pool_timeout: float = 3.0  # no free connection within this: 503 with Retry-After, not a queue
    kafka_partitions: int = 6
    kafka_group_id: str = "custsync-worker"
    worker_max_attempts: int = 5  # for an unexpected error (a bug, not an outage): then it is dead-lettered
    worker_retry_max_delay: float = 30.0  # the backoff cap while a system is down (outages are waited out)
    # Deliveries of different customers handled at once per worker: enough to spend STRIPE_MAX_RPS
    # at real Stripe latency (100/s x ~0.3 s per call); one customer's always one at a time, in order.
    worker_concurrency: int = 32
    kafka_max_poll_interval_ms: int = 300_000
    kafka_session_timeout_ms: int = 10_000  # how soon a crashed worker's partitions move to the others
    kafka_heartbeat_interval_ms: int = 3_000
    reconcile_interval: float = 0.0  # seconds between scheduled reconcile runs (drift checks); 0: none
    catchup_interval: float = 60.0  # seconds between polls of each system's change log (0: no catch-up)
    catchup_overlap: float = 120.0  # seconds each poll reads back before the newest change it saw
    # Days the worker keeps published outbox events, inbox entries, succeeded sync records and replayed
    # dead letters (0: forever, and deleted customers are not scrubbed); at least MIN_RETENTION_DAYS.
    retention_days: int = 30
    # The worker's operations listener (/health, /ready, /metrics): 0 is off.
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    metrics_interval: float = 15.0  # seconds between the worker's samples of backlog, lag, drift (its status)

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
        raise SettingsError(
            "need 0 < KAFKA_HEARTBEAT_INTERVAL_MS < KAFKA_SESSION_TIMEOUT_MS <= KAFKA_MAX_POLL_INTERVAL_MS"
        )
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
    if settings.storage_backend == "memory" and settings.broker_backend == "kafka" or (
        settings.storage_backend == "postgres" and settings.broker_backend == "memory"
    ):
        raise SettingsError("set both DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS, or neither (in-memory, for custsync dev)")
    return settings


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
            raise SettingsError("SALESFORCE_INSTANCE_URL is set: SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET are needed too")
    if not re.fullmatch(r"[1-9][0-9]\.0", settings.salesforce_api_version):
        raise SettingsError("SALESFORCE_API_VERSION must look like 62.0")
    fields = (settings.salesforce_external_id_field, settings.salesforce_create_key_field)
    if not all(_SALESFORCE_FIELD.fullmatch(f) for f in fields) or fields[0] == fields[1]:
        raise SettingsError(
            "SALESFORCE_EXTERNAL_ID_FIELD and SALESFORCE_CREATE_KEY_FIELD must be two custom field API names (Name__c)"
        )
    if not 0 < settings.salesforce_max_rps < math.inf or not 0 < settings.salesforce_timeout < math.inf:
        raise SettingsError("SALESFORCE_MAX_RPS and SALESFORCE_TIMEOUT must be positive")
