"""Reconcile: what comparing the catalog with an external system's full list finds, and the fix
each finding gets. Pure rules; ``application.sync.reconcile`` reads both sides and applies them.

Every fix goes through the paths live changes take (the inbound use case, or an outbox event),
so conflicts follow the policy and every safety rule holds. A fix that could destroy or duplicate
a person is never guessed: it is reported (``Fix.NONE``) for someone to decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

import msgspec

from domain.conflicts import ConflictPolicy
from domain.customer import SYNCED_FIELDS, Customer, CustomerData
from domain.mapping import ExternalMapping
from domain.messages import ExternalCustomer

T = TypeVar("T")


class FindingKind(StrEnum):
    IN_SYNC = "in_sync"
    DIFFERS = "differs"  # linked, and the two sides hold different values (``fields``)
    MISSING_THERE = "missing_there"  # linked, but the external system does not list it any more
    ONLY_THERE = "only_there"  # an external record no catalog customer is linked to
    ONLY_HERE = "only_here"  # a catalog customer never pushed there
    AMBIGUOUS = "ambiguous"  # several candidates, or a claim without proof: a person decides


class Fix(StrEnum):
    NONE = "none"  # reported only
    REFRESH = "refresh"  # the external record's current state, through the inbound use case
    IMPORT = "import"  # a new catalog customer, through the inbound use case (then tagged there)
    EXPORT = "export"  # created there, through an outbox event
    LINK = "link"  # linked to its one match; the rest syncs through outbox events
    PUSH = "push"  # the catalog's state sent again, through an outbox event


class FixStatus(StrEnum):
    PLANNED = "planned"  # found, not applied yet (a dry run's fixes stay planned)
    APPLIED = "applied"
    SKIPPED = "skipped"  # the situation changed before the fix ran: nothing was done
    FAILED = "failed"
    NONE = "none"  # nothing to apply


class MatchBy(StrEnum):
    EMAIL = "email"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)


class Phase(StrEnum):
    """A run's phases, in order; each has its own checkpoint."""

    EXTERNAL = "external"  # the external list, page by page: linked records compared
    MISSING = "missing"  # links whose record the list did not show
    CATALOG = "catalog"  # catalog customers linked to nothing there: matched, exported
    UNLINKED = "unlinked"  # external records linked to nothing here: imported
    DONE = "done"


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    run_id: int
    subject: str  # one finding per subject per run: "customer:<id>", "external:<id>", "email:<address>"
    kind: FindingKind
    fix: Fix
    fix_status: FixStatus
    at: datetime
    customer_id: int | None = None
    external_id: str | None = None
    fields: tuple[str, ...] = ()
    detail: str | None = None
    seq: int = 0  # the order it was found in (assigned by storage)

    @classmethod
    def found(
        cls,
        run_id: int,
        subject: str,
        kind: FindingKind,
        fix: Fix,
        at: datetime,
        *,
        customer_id: int | None = None,
        external_id: str | None = None,
        fields: tuple[str, ...] = (),
        detail: str | None = None,
    ) -> Finding:
        """A finding as a run makes it: its fix planned, or reported only when it has none."""
        status = FixStatus.NONE if fix is Fix.NONE else FixStatus.PLANNED
        return cls(
            run_id=run_id,
            subject=subject,
            kind=kind,
            fix=fix,
            fix_status=status,
            at=at,
            customer_id=customer_id,
            external_id=external_id,
            fields=fields,
            detail=detail,
        )


class ReconcileRun(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    system: str
    status: RunStatus
    dry_run: bool
    match_by: MatchBy | None
    trigger: str  # "cli", "api", "schedule"
    created_at: datetime
    phase: Phase = Phase.EXTERNAL
    checkpoint: str | None = None
    counts: dict[str, int] = msgspec.field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    owner: str | None = None
    error: str | None = None

    def has_options(self, dry_run: bool, match_by: MatchBy | None) -> bool:
        return (self.dry_run, self.match_by) == (dry_run, match_by)

    def counted(self, **more: int) -> ReconcileRun:
        counts = dict(self.counts)
        for key, n in more.items():
            if n:
                counts[key] = counts.get(key, 0) + n
        return msgspec.structs.replace(self, counts=counts)


def email_key(email: str | None) -> str | None:
    """What two emails must share to be the same address: case is not a difference people make
    (``lower(email)``, as the catalog's index has it)."""
    return email.lower() if email else None


def compare_linked(
    customer: Customer, mapping: ExternalMapping, external: ExternalCustomer
) -> tuple[FindingKind, Fix, tuple[str, ...], str | None]:
    """A linked pair, the external record as its list shows it now (so: not deleted there)."""
    if customer.deleted:
        if mapping.synced_version < customer.version:
            return FindingKind.DIFFERS, Fix.PUSH, ("deleted",), "deleted here, still there: the deletion is sent again"
        return (
            FindingKind.DIFFERS,
            Fix.NONE,
            ("deleted",),
            ("deleted here, yet listed there although the deletion was synced (a restored account?): a person decides"),
        )
    fields = tuple(sorted(customer.data.changed_fields(external.data)))
    if mapping.broken is not None:
        return FindingKind.DIFFERS, Fix.PUSH, fields, f"the link was marked broken ({mapping.broken}), yet the record is listed"
    if not fields:
        return FindingKind.IN_SYNC, Fix.NONE, (), None
    return FindingKind.DIFFERS, Fix.REFRESH, fields, _who_changed(customer.data, mapping.synced, external.data, fields)


def _who_changed(catalog: CustomerData, baseline: CustomerData, external: CustomerData, fields: tuple[str, ...]) -> str:
    parts = []
    for f in fields:
        here, there = getattr(catalog, f) != getattr(baseline, f), getattr(external, f) != getattr(baseline, f)
        parts.append(f"{f}: " + ("changed on both sides" if here and there else "changed here" if here else "changed there"))
    return "; ".join(parts)


def email_match(match_by: MatchBy | None, candidates_there: Sequence[T], namesakes_here: Sequence[object]) -> T | None:
    """The one record a catalog customer is linked to on a first sync, by its email: only when
    asked (``--match-by email``) and only one to one -- the only unlinked record there with that
    email, and the customer the only unlinked one here with it. Anything else (several on either
    side, or not asked) is a guess that could merge two people or make one twice: a person decides."""
    if match_by is MatchBy.EMAIL and len(candidates_there) == 1 and len(namesakes_here) == 1:
        return candidates_there[0]
    return None


def first_link_data(catalog: CustomerData, external: CustomerData, policy: ConflictPolicy) -> CustomerData:
    """Two records linked for the first time share no history: no field has a baseline to tell
    who changed it. A field set on one side only takes that value (a link never clears one); a
    field set differently on both keeps the catalog's (the hub), unless the policy is
    ``external_wins`` (the external side wins every conflict)."""
    merged = {}
    for f in SYNCED_FIELDS:
        here, there = getattr(catalog, f), getattr(external, f)
        if here is None or (there is not None and policy is ConflictPolicy.EXTERNAL_WINS):
            merged[f] = there
        else:
            merged[f] = here
    return CustomerData(**merged)
