"""A reconcile run's storage: its checkpoints, findings and what it has seen."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from domain.customer import Customer
from domain.drift import Finding, ReconcileRun
from domain.mapping import ExternalMapping
from domain.messages import ExternalCustomer


class SeenExternal(msgspec.Struct, frozen=True):
    """An external record a reconcile run read from the list: ``record`` is kept for the unlinked
    ones (candidates to match or import), ``None`` for those already linked or set aside."""

    external_id: str
    record: ExternalCustomer | None = None


CREATE_IN_FLIGHT = "its create is in flight"  # a reason ReconcileRepository.held_back gives


class ReconcileRepository(Protocol):
    """Reconcile runs (a checkpoint per phase, so an interrupted run goes on where it stopped),
    their findings (also the journal of fixes: each applied once), and what each run has seen."""

    async def add_run(self, run: ReconcileRun) -> tuple[ReconcileRun, bool]:
        """Queue ``run`` (its id is assigned) unless a run of its system is active (queued or
        running): then that one, and ``False``."""

    async def get_run(self, run_id: int) -> ReconcileRun | None: ...

    async def runs(self, system: str | None, limit: int, *, dry_run: bool | None = None) -> list[ReconcileRun]:
        """Newest first (``dry_run``: only dry runs, or only runs that fix)."""

    async def active_run(self, system: str) -> ReconcileRun | None: ...

    async def claim_run(self, run_id: int | None, owner: str, now: datetime, stale_before: datetime) -> ReconcileRun | None:
        """Make ``owner`` run it (``None``: the oldest claimable run): a queued run, or a running
        one whose heartbeat is older than ``stale_before`` (its runner died). ``None`` if there is
        none to claim (someone else holds it)."""

    async def save_run(self, run: ReconcileRun) -> bool:
        """Store the run's progress if ``run.owner`` still runs it; ``False`` (nothing stored) if
        another runner took it over, or it was cancelled."""

    async def heartbeat(self, run_id: int, owner: str, at: datetime) -> bool:
        """Say that ``owner`` still runs it (nothing else of the run is written)."""

    async def add_findings(self, findings: Sequence[Finding]) -> list[Finding]:
        """Keep each, unless its run already has a finding of that subject (a page read again
        after an interruption, an email shared by customers of two pages): the first one stands,
        with its fix status. Returns those kept now."""

    async def fix_counts(self, run_id: int) -> dict[str, int]:
        """How many of the run's findings have each fix status."""

    async def kind_counts(self, run_id: int) -> dict[str, int]:
        """How many of the run's findings are of each kind."""

    async def findings(self, run_id: int, *, after: int | None, limit: int, kinds: Sequence[str] | None = None) -> list[Finding]:
        """In the order they were found (``Finding.seq``), after ``after``."""

    async def planned(self, run_id: int, limit: int) -> list[Finding]:
        """Findings whose fix was not applied yet, in the order they were found."""

    async def set_fix_status(self, run_id: int, subject: str, status: str, detail: str | None = None) -> None: ...

    async def mark_seen(self, run_id: int, seen: Sequence[SeenExternal]) -> None:
        """Record what the run read (again: a page read twice changes nothing)."""

    async def seen_record(self, run_id: int, external_id: str) -> ExternalCustomer | None: ...

    async def unseen_links(
        self, run_id: int, system: str, linked_before: datetime, after_customer_id: int | None, limit: int
    ) -> list[ExternalMapping]:
        """Links of ``system`` made before ``linked_before`` whose record the run did not see, by customer id."""

    async def unlinked_customers(self, system: str, created_before: datetime, after_id: int | None, limit: int) -> list[Customer]:
        """Catalog customers (not deleted) made before ``created_before`` and linked to nothing in ``system``, by id."""

    async def linked_in_page(self, run_id: int, system: str, records: Sequence[ExternalCustomer]) -> tuple[set[str], set[str]]:
        """Of a page of the external list: the records linked to a catalog customer, marked seen by
        the run (as ``mark_seen`` would), and of those the ones not plainly in sync -- the
        customer's name or email differs from the record's, the customer is deleted, or the link
        is broken. Compared where the data is: the page's in-sync links (nearly all of them) are
        never read out."""

    async def held_back(self, run_id: int, system: str, customer_ids: Sequence[int]) -> dict[int, str]:
        """Of ``customer_ids``, those a run must neither export nor link, with why: a create of
        ours is in flight (a create intent waits for its answer), or a record the run listed
        claims the customer (its metadata names it and this installation; see ``Finding``)."""

    async def ambiguous_emails(self, system: str, email_keys: Sequence[str]) -> set[str]:
        """Those of ``email_keys`` the system's latest completed run that was not a dry run reported
        as shared by unlinked customers on both sides (``email:<key>`` ambiguous findings): held
        from live import and export until a person decides (domain.drift). A dry run changes
        nothing, holds included: a preview planning a link must not release what it did not link."""

    async def unlinked_customer_ids(self, system: str, email_keys: Sequence[str]) -> dict[str, list[int]]:
        """Per lower-cased email, the catalog customers (not deleted) with it linked to nothing in ``system``."""

    async def unlinked_seen(self, run_id: int, email_keys: Sequence[str]) -> dict[str, list[ExternalCustomer]]:
        """Per lower-cased email, the unlinked records the run saw with it."""

    async def undecided(self, run_id: int, after_external_id: str | None, limit: int) -> list[ExternalCustomer]:
        """The unlinked records the run saw that no decision took yet, by external id."""

    async def decide(self, run_id: int, external_ids: Sequence[str]) -> None:
        """Set these aside: matched, or ambiguous (never imported)."""

    async def forget_seen(self, run_id: int) -> None:
        """A finished run's working set is dropped; its findings stay."""
