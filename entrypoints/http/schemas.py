"""Request and response bodies (msgspec structs; Litestar builds the OpenAPI schema from them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from application.customers.queries import CustomerView, Link
from domain.customer import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH, Customer
from domain.dead_letters import DeadLetter
from domain.drift import Finding, ReconcileRun
from domain.sync import SyncRecord
from entrypoints.http.params import BIGINT_MAX

# The domain owns the rules (it trims, then checks); the schema only describes them.
# The lengths are also checked here, as sent (the domain counts after trimming), so that the schema's
# maxLength is exactly what is refused.
Name = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        examples=["Ada Lovelace"],
        description=f"Trimmed; 1 to {NAME_MAX_LENGTH} characters, not blank, no control characters.",
    ),
]
Email = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=EMAIL_MAX_LENGTH,
        examples=["ada@example.com"],
        description=f"Trimmed; a plausible address (as Stripe checks them) of at most {EMAIL_MAX_LENGTH} characters.",
    ),
]


class CustomerCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    email: Email | None = None


class CustomerReplace(msgspec.Struct, forbid_unknown_fields=True):
    """PUT replaces every field: both must be given (``null`` clears one)."""

    name: Name | None
    email: Email | None


class CustomerPatch(msgspec.Struct, forbid_unknown_fields=True):
    """PATCH changes only the fields given; ``null`` clears one."""

    name: Name | UnsetType | None = UNSET
    email: Email | UnsetType | None = UNSET

    def changes(self) -> dict[str, str | None]:
        return {f: getattr(self, f) for f in self.__struct_fields__ if getattr(self, f) is not UNSET}


class LinkOut(msgspec.Struct):
    system: str
    external_id: str | None
    sync_status: Annotated[
        str,
        Meta(
            description="pending, synced, retrying (its last attempt failed and it is being tried again: an outage, "
            "a rate limit), dead (see the dead letters) or broken."
        ),
    ]
    last_synced_at: datetime | None
    broken: Annotated[
        str | None, Meta(description="Why the link cannot be used: the external id is unknown to the bound account.")
    ] = None

    @classmethod
    def of(cls, link: Link) -> LinkOut:
        return cls(link.system, link.external_id, link.sync_status, link.last_synced_at, link.broken)


class CustomerOut(msgspec.Struct):
    id: int
    name: str | None
    email: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    mappings: list[LinkOut] | UnsetType = UNSET

    @classmethod
    def of(cls, customer: Customer, view: CustomerView | None = None) -> CustomerOut:
        return cls(
            id=customer.id,
            name=customer.name,
            email=customer.email,
            version=customer.version,
            created_at=customer.created_at,
            updated_at=customer.updated_at,
            mappings=[LinkOut.of(link) for link in view.links] if view is not None else UNSET,
        )


class CustomerPageOut(msgspec.Struct):
    data: list[CustomerOut]
    limit: int
    next_cursor: str | None = msgspec.field(default=None)


class SyncEventOut(msgspec.Struct):
    event_id: str
    direction: str
    system: str
    operation: str
    status: str
    attempts: int
    last_error: str | None
    note: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: SyncRecord) -> SyncEventOut:
        return cls(
            r.event_id,
            r.direction.value,
            r.system,
            r.operation.value,
            r.status.value,
            r.attempts,
            r.last_error,
            r.note,
            r.created_at,
            r.updated_at,
        )


class Health(msgspec.Struct):
    status: str


class WebhookAck(msgspec.Struct):
    received: bool
    event_id: str | None = None
    ignored: bool = False  # an event type we do not sync
    rejected: str | None = None  # a genuine event whose object was refused: kept with the dead letters, never applied


class DeadLetterOut(msgspec.Struct):
    id: int
    topic: Annotated[str, Meta(description="The topic it came from, where a replay sends it back.")]
    key: str
    event_id: str
    error: str
    created_at: Annotated[datetime, Meta(description="When it (last) died.")]
    replayed_at: datetime | None
    payload: Annotated[str, Meta(description="The message as it was on the topic (UTF-8; invalid bytes replaced).")]

    @classmethod
    def of(cls, d: DeadLetter) -> DeadLetterOut:
        return cls(d.id, d.topic, d.key, d.event_id, d.error, d.created_at, d.replayed_at, d.payload.decode("utf-8", "replace"))


class DeadLetterReplay(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of ``ids`` (those letters) or ``"all": true`` (every letter not yet replayed)."""

    ids: Annotated[list[Annotated[int, Meta(ge=1, le=BIGINT_MAX)]], Meta(min_length=1, examples=[[1, 2]])] | UnsetType = UNSET
    all: bool | UnsetType = UNSET


class ReplayOut(msgspec.Struct):
    replayed: list[int]


class FieldProblem(msgspec.Struct):
    field: Annotated[str, Meta(description='The offending field, query or path parameter, or header ("If-Match").')]
    reason: str
    # Where it was: body, query, path or header (absent for the catalog's own field rules).
    in_: str | UnsetType = msgspec.field(default=UNSET, name="in")


class Problem(msgspec.Struct):
    """An RFC 9457 problem; the optional members appear where they apply."""

    type: str
    title: str
    status: int
    detail: str | UnsetType = UNSET
    errors: Annotated[list[FieldProblem], Meta(description="422: every offending field, with why.")] | UnsetType = UNSET
    current_version: Annotated[int, Meta(description="412: the customer's version now.")] | UnsetType = UNSET
    unknown_ids: Annotated[list[int], Meta(description="404 on a replay: ids of no dead letter.")] | UnsetType = UNSET
    replayed_ids: Annotated[list[int], Meta(description="404 on a replay: ids already replayed.")] | UnsetType = UNSET


class ReconcileRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A reconcile run for the worker to execute (``custsync reconcile`` runs one in the terminal)."""

    system: Annotated[str, Meta(description="The integration to compare the catalog with.", examples=["stripe"])] = "stripe"
    dry_run: Annotated[bool, Meta(description="Report only; change nothing.")] = False
    match_by: Annotated[
        Literal["email"] | None,
        Meta(description="Link each unlinked catalog customer to the one unlinked record with its email (first sync)."),
    ] = None


class FindingOut(msgspec.Struct):
    seq: int
    subject: str
    kind: Annotated[str, Meta(description="in_sync, differs, missing_there, only_there, only_here or ambiguous.")]
    customer_id: int | None
    external_id: str | None
    fields: list[str]
    detail: str | None
    fix: Annotated[str, Meta(description="none (reported only), refresh, import, export, link or push.")]
    fix_status: Annotated[str, Meta(description="planned, applied, skipped, failed or none.")]

    @classmethod
    def of(cls, f: Finding) -> FindingOut:
        return cls(
            f.seq,
            f.subject,
            f.kind.value,
            f.customer_id,
            f.external_id,
            list(f.fields),
            f.detail,
            f.fix.value,
            f.fix_status.value,
        )


class ReconcileRunOut(msgspec.Struct):
    id: int
    system: str
    status: Annotated[str, Meta(description="queued (waiting for a worker), running, done, failed or cancelled.")]
    dry_run: bool
    match_by: str | None
    trigger: Annotated[str, Meta(description="cli, api or schedule.")]
    phase: Annotated[str, Meta(description="external, missing, catalog, unlinked, done: where it is (or stopped).")]
    counts: Annotated[dict[str, int], Meta(description="Findings by kind, records listed, fixes by status.")]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, r: ReconcileRun) -> ReconcileRunOut:
        return cls(
            r.id,
            r.system,
            r.status.value,
            r.dry_run,
            r.match_by.value if r.match_by else None,
            r.trigger,
            r.phase.value,
            dict(sorted(r.counts.items())),
            r.created_at,
            r.started_at,
            r.finished_at,
            r.error,
        )


class ReconcileReportOut(msgspec.Struct):
    """A run and what it found (everything but the customers in sync): what `custsync reconcile --json` prints."""

    run: ReconcileRunOut
    findings: list[FindingOut]


class ResyncRequest(msgspec.Struct, forbid_unknown_fields=True):
    direction: Annotated[
        Literal["push", "pull"],
        Meta(
            description="push: the catalog's state is written there; pull: the external state is taken here. "
            "Either way whatever the baselines and the conflict policy say."
        ),
    ] = "push"
    system: Annotated[str, Meta(examples=["stripe"])] = "stripe"


class ResyncOut(msgspec.Struct):
    customer_id: int
    system: str
    direction: str
    event_id: Annotated[str, Meta(description="The change that carries it: its outcome shows in the customer's sync-events.")]
