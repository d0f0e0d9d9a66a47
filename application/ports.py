"""The ports: what the application needs from the outside world, as Protocols.

Adapters implement them structurally (no inheritance needed): ``adapters/memory`` for tests and
the embedded dev mode, ``adapters/postgres``, ``adapters/kafka`` and ``adapters/stripe`` for real.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import msgspec

from domain.binding import AccountBinding, ExternalAccount
from domain.customer import Customer, CustomerData
from domain.dead_letters import DeadLetter
from domain.drift import Finding, ReconcileRun
from domain.errors import FieldError
from domain.mapping import CreateIntent, ExternalMapping
from domain.messages import CustomerChanged, ExternalChange, ExternalCustomer
from domain.ownership import OwnershipTag
from domain.sync import Direction, Handled, SyncRecord


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class CustomerRepository(Protocol):
    async def add(self, data: CustomerData, at: datetime) -> Customer:
        """Store a new customer; the catalog assigns its integer id."""

    async def get(self, customer_id: int) -> Customer | None: ...

    async def save(self, customer: Customer) -> None:
        """Store a changed customer (optimistically: the stored version must be ``customer.version - 1``,
        else ConcurrentUpdate). Saving an unchanged customer is a no-op."""

    async def page(self, *, after_id: int | None, limit: int, email: str | None = None) -> list[Customer]:
        """Customers by ascending id after ``after_id``; ``email`` matches case-insensitively."""

    async def get_many(self, customer_ids: Sequence[int]) -> dict[int, Customer]:
        """Those of ``customer_ids`` that exist (tombstones included), by id."""


class MappingRepository(Protocol):
    async def get(self, customer_id: int, system: str) -> ExternalMapping | None: ...

    async def by_external_id(self, system: str, external_id: str) -> ExternalMapping | None: ...

    async def by_external_ids(self, system: str, external_ids: Sequence[str]) -> dict[str, ExternalMapping]:
        """Those of ``external_ids`` linked in ``system``, by external id."""

    async def for_customer(self, customer_id: int) -> list[ExternalMapping]: ...

    async def latest(self, system: str) -> ExternalMapping | None:
        """The most recently synced mapping of ``system`` that is not broken, if any."""

    async def save(self, mapping: ExternalMapping) -> ExternalMapping:
        """Insert the mapping of (customer_id, system), or replace it if the stored one still has
        ``mapping.version`` (else ConcurrentUpdate: someone wrote it since it was read). Returns
        it as stored, with its new version."""

    async def remove(self, customer_id: int, system: str) -> None: ...


class CreateIntentRepository(Protocol):
    async def get(self, customer_id: int, system: str) -> CreateIntent | None: ...

    async def add(self, intent: CreateIntent) -> None:
        """Keep ``intent`` unless one exists for (customer_id, system): the first one stands.
        Remove it first to replace it (a refused create, a key that proved to have made nothing)."""

    async def remove(self, customer_id: int, system: str) -> None: ...


class SyncRecordRepository(Protocol):
    async def get(self, event_id: str, system: str, direction: Direction) -> SyncRecord | None: ...

    async def save(self, record: SyncRecord) -> None:
        """Insert or replace the record of (event_id, system, direction)."""

    async def for_customer(self, customer_id: int, limit: int) -> list[SyncRecord]:
        """Newest first."""

    async def for_event(self, event_id: str) -> list[SyncRecord]:
        """Every record of one event, whatever its system and direction (in insertion order)."""


class Inbox(Protocol):
    """Ids of external events already applied, so that a redelivered event is applied once."""

    async def seen(self, system: str, event_id: str) -> bool: ...

    async def seen_many(self, system: str, event_ids: Sequence[str]) -> set[str]:
        """Those of ``event_ids`` already applied."""

    async def add(self, system: str, event_id: str, at: datetime) -> None: ...


class Outbox(Protocol):
    """Integration events written in the same transaction as the change they describe."""

    async def add(self, event: CustomerChanged) -> None: ...


class PendingEvent(msgspec.Struct, frozen=True):
    position: int
    event: CustomerChanged


class OutboxRelayPort(Protocol):
    """The relay's side of the outbox: claim unpublished events in order, then mark them."""

    async def claim(self, limit: int) -> list[PendingEvent]:
        """The oldest unpublished events; while one relay holds a claim (until its commit), other
        relays' claims find nothing, so that concurrent relays cannot reorder one customer's events."""

    async def mark_published(self, positions: Sequence[int], at: datetime) -> None: ...


class ScrubCandidate(msgspec.Struct, frozen=True):
    """A deleted customer whose personal data is not scrubbed yet, with what decides whether it may
    be now (``domain.retention.deletion_settled``)."""

    customer: Customer
    mappings: list[ExternalMapping]
    unpublished: bool  # an event of it waits in the outbox
    in_flight: bool  # a create of it waits for its answer (an intent, no link), or a record is pending or retrying


class EventsScrubbed(msgspec.Struct, frozen=True):
    rows: int
    emails: frozenset[str]  # the emails those events named


class RetentionRepository(Protocol):
    """What a retention pass deletes and scrubs (``application.sync.retention``; the rules are in
    ``domain.retention``). Each prune deletes at most ``limit`` rows, oldest first, passing over
    rows another transaction holds (so several workers prune side by side), and returns how many."""

    async def prune_outbox(self, published_before: datetime, limit: int) -> int:
        """Events published before ``published_before``; never one still waiting to be published."""

    async def prune_inbox(self, processed_before: datetime, limit: int) -> int:
        """Entries of events applied before ``processed_before``."""

    async def prune_sync_records(self, settled_before: datetime, limit: int) -> int:
        """Records that succeeded before ``settled_before``: never a pending, retrying or dead one,
        nor the newest record of its customer, system and direction when a retrying or dead one
        precedes it (a link's newest record is what its ``sync_status`` is read from)."""

    async def prune_dead_letters(self, replayed_before: datetime, limit: int) -> int:
        """Letters replayed (or dismissed) before ``replayed_before``; never one waiting."""

    async def unscrubbed(self, after_id: int | None, limit: int) -> list[ScrubCandidate]:
        """Deleted customers whose personal data was not scrubbed yet, by id after ``after_id``."""

    async def scrub_events(self, customer_id: int, limit: int) -> EventsScrubbed:
        """Clear what up to ``limit`` of a deleted customer's published events say of it
        (``domain.retention.scrubbed_event``). A customer not deleted is left alone."""

    async def scrub_customer(self, customer_id: int, emails: frozenset[str], at: datetime) -> int | None:
        """Scrub the rest of a deleted customer and mark it scrubbed at ``at``: its links, its create
        intent, its dead letters, the mentions of ``emails`` (and of those found on the way) in its
        history and in those letters' errors, its tombstone. Returns how many rows changed; a
        customer not deleted is left alone (0). The rule (``domain.retention.deletion_settled``) is
        checked again under the customer's lock: no longer settled (a create of it went out
        meanwhile), or scrubbed already (by another worker), nothing changes and it returns ``None``."""


class InstallationRepository(Protocol):
    """The id of this installation of custsync, made once (``custsync init``, or the first start)."""

    async def get(self) -> str | None: ...

    async def add(self, installation_id: str, at: datetime) -> str:
        """Keep ``installation_id`` unless one exists; returns the one that stands."""


class BindingRepository(Protocol):
    """The external account each integration is bound to."""

    async def get(self, system: str) -> AccountBinding | None: ...

    async def add(self, binding: AccountBinding) -> AccountBinding:
        """Keep ``binding`` unless one exists for its system; returns the one that stands."""

    async def save(self, binding: AccountBinding) -> None:
        """Insert or replace the binding of ``binding.system`` (an operator's rebind)."""


class Cursor(msgspec.Struct, frozen=True, kw_only=True):
    """Where a poller of an external system's change log has got to (``position``: the poller's
    own encoding), and who polls it now: one poller at a time holds the lease."""

    system: str
    name: str
    position: str | None
    updated_at: datetime
    leased_by: str | None = None
    leased_until: datetime | None = None


class CursorRepository(Protocol):
    async def get(self, system: str, name: str) -> Cursor | None: ...

    async def lease(self, system: str, name: str, owner: str, until: datetime, now: datetime) -> Cursor | None:
        """Take or renew the lease of the cursor (made, without a position, if there is none):
        the cursor, now leased by ``owner`` until ``until``; ``None`` if someone else holds an
        unexpired lease (``leased_until`` > ``now``)."""

    async def advance(self, system: str, name: str, owner: str, position: str, at: datetime) -> bool:
        """Store ``position`` if ``owner`` still holds the lease; ``False`` (nothing stored) if not."""

    async def release(self, system: str, name: str, owner: str) -> None:
        """Give the lease up (if ``owner`` holds it), so that another poller may take it at once."""


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


class SyncActivity(msgspec.Struct, frozen=True, kw_only=True):
    """One system's sync history as an on-call engineer reads it (``StatusRepository.activity``)."""

    last_outbound: datetime | None  # when a change last settled there (outbound) ...
    last_inbound: datetime | None  # ... and from there (inbound)
    settled: int  # records settled (succeeded) since the window's start
    failing: int  # records retrying or dead, last touched since the window's start
    last_error: str | None
    last_error_at: datetime | None
    oldest_unsettled: datetime | None  # the oldest change still pending or retrying there


class StatusRepository(Protocol):
    """Aggregates for ``custsync status`` and the sampled metrics: each one query, none per customer."""

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """Unpublished outbox events, and when the oldest of them was committed."""

    async def dead_letters_waiting(self) -> dict[str, int]:
        """Dead letters not replayed, by original topic."""

    async def activity(self, system: str, since: datetime) -> SyncActivity: ...

    async def out_of_sync(self, system: str) -> dict[str, int]:
        """Live catalog customers not in sync with ``system``, by status: ``unlinked`` (never
        linked there), ``behind`` (a change not carried yet), ``broken`` (the link cannot be used),
        ``retrying`` and ``dead`` (customers whose latest sync there is failing or was given up)."""


class UnitOfWork(Protocol):
    """One transaction over every repository. Leaving the block without ``commit()`` rolls back."""

    customers: CustomerRepository
    mappings: MappingRepository
    create_intents: CreateIntentRepository
    sync_records: SyncRecordRepository
    inbox: Inbox
    outbox: Outbox
    relay: OutboxRelayPort
    dead_letters: DeadLetterRepository
    installation: InstallationRepository
    bindings: BindingRepository
    cursors: CursorRepository
    reconcile: ReconcileRepository
    retention: RetentionRepository
    status: StatusRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class Envelope(msgspec.Struct, frozen=True):
    """A message on a topic: ``key`` keeps one customer's messages in order."""

    topic: str
    key: str
    event_id: str
    payload: bytes
    error: str | None = None  # set on dead letters


class MessagePublisher(Protocol):
    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Durably publish, in order; returns once the broker has acknowledged every message."""


class Delivery(msgspec.Struct, frozen=True):
    envelope: Envelope
    partition: int
    offset: int


Partition = tuple[str, int]  # (topic, partition)


class MessageSource(Protocol):
    """A consumer-group subscription to sync topics, committed manually.

    Fetching regularly is what keeps the member in its group: a consumer that must wait (a
    system is down) pauses the partitions concerned and goes on fetching, rather than sleeping.
    A source that cannot reach its broker raises ``BrokerUnavailable``.
    """

    async def fetch(self, max_messages: int, timeout: float) -> list[Delivery]: ...

    async def commit(self, deliveries: Sequence[Delivery]) -> None:
        """Record that these (and everything before them on their partitions) are done."""

    def assignment(self) -> set[Partition]:
        """The partitions this member owns now (after a rebalance, their deliveries start again
        from the last committed offset)."""

    def pause(self, partitions: set[Partition]) -> None:
        """Stop fetching these partitions (their deliveries wait on the broker) until resumed."""

    def resume(self, partitions: set[Partition]) -> None: ...


class Page(msgspec.Struct, frozen=True):
    customers: list[ExternalCustomer]
    next_cursor: str | None


class ChangePage(msgspec.Struct, frozen=True):
    changes: list[ExternalChange]
    next_cursor: str | None


class Integration(Protocol):
    """An external system that holds customers (Stripe, and later Salesforce and others).

    Raises only the errors in ``application.errors``. ``ExternalCustomerMissing`` means the
    system does not know the id -- never that the customer was deleted (see ``domain.safety``).
    """

    system: str

    async def account(self) -> ExternalAccount:
        """The account (and mode) the credentials belong to."""

    async def create_customer(self, data: CustomerData, *, tag: OwnershipTag, idempotency_key: str) -> ExternalCustomer:
        """Create the customer, tagged as ours; the same key never creates twice. A failure the
        system saved under the key raises IdempotentReplayFailure."""

    def field_errors(self, changes: Mapping[str, str | None]) -> list[FieldError]:
        """What the system would refuse of these catalog field values (its own limits, beyond the
        catalog's), so that the API refuses them before anything is stored."""

    async def update_customer(
        self, external_id: str, changes: Mapping[str, str | None], *, idempotency_key: str | None = None
    ) -> ExternalCustomer | None:
        """Send only ``changes`` (field -> new value, ``None`` clears). The key marks the write
        as ours in the events it causes (a system without keys: repeating a write is harmless).
        The record as the answer shows it, when the system answers with one (Stripe does; a
        Salesforce PATCH answers 204): sync never relies on it, a re-fetch does that."""

    async def link_customer(self, external_id: str, tag: OwnershipTag, *, idempotency_key: str | None = None) -> None:
        """Tag a customer created over there as ours (Stripe: metadata, merged key by key)."""

    async def delete_customer(self, external_id: str) -> None:
        """Delete it; ExternalCustomerMissing if the system does not know it (or no longer lets it
        be deleted): only ``retrieve_customer`` tells which."""

    async def retrieve_customer(self, external_id: str) -> ExternalCustomer:
        """The customer as the system holds it now (``deleted`` set if it was deleted)."""

    async def list_customers(
        self, *, limit: int, cursor: str | None = None, email: str | None = None, created_since: datetime | None = None
    ) -> Page:
        """Customers, newest first, from the system's strongly consistent list (never a search
        index): ``email`` exactly, ``created_since`` inclusive."""

    async def created_customers(self, *, created_since: datetime, cursor: str | None = None) -> Page:
        """Customers as the system's own record of their creation shows them, deleted ones
        included (Stripe: ``customer.created`` events), newest first."""

    async def recent_changes(self, *, since: datetime, cursor: str | None = None) -> ChangePage:
        """Customer changes the system recorded at or after ``since``, newest first, from its own
        change log (Stripe: ``GET /v1/events``, 30 days of history) -- what webhooks should have
        delivered. Each is the same ``ExternalChange`` its webhook would be (same event id), so the
        inbox drops what was delivered both ways. An entry that cannot be read is left out."""


Integrations = Mapping[str, Integration]


@runtime_checkable
class WebhookSource(Protocol):
    """A system that tells of its changes by signed webhooks (Stripe; Salesforce sends none: its
    changes are polled). Only such systems have an endpoint at ``/api/v1/webhooks/{system}``."""

    system: str

    def parse_webhook(self, payload: bytes, headers: Mapping[str, str]) -> ExternalChange | None:
        """Verify and parse a webhook; ``None`` for event types we ignore; raises InvalidWebhook."""


WebhookSources = Mapping[str, WebhookSource]


class DeadLetterRepository(Protocol):
    """Messages the worker gave up on, one per (original topic, event_id), until they are replayed."""

    async def add(self, envelope: Envelope, at: datetime) -> DeadLetter:
        """Keep ``envelope`` (its original topic, key, payload and ``error``). The same event dying
        again updates that letter's error and time and makes it unreplayed again."""

    async def list(self, limit: int, include_replayed: bool = False) -> list[DeadLetter]:
        """Newest (last died) first."""

    async def get(self, letter_id: int) -> DeadLetter | None: ...

    # ``builtins.list``: inside this class ``list`` names the method above.
    async def unreplayed(self, ids: Sequence[int] | None) -> builtins.list[DeadLetter]:
        """Those of ``ids`` (``None``: all) not yet replayed, in the order they first died (for one
        customer, their order on the topic); locked against other replays until the next commit."""

    async def mark_replayed(self, letter: DeadLetter, at: datetime) -> None:
        """Record that ``letter`` was replayed at ``at`` -- unless it died again since it was read
        (its ``created_at`` moved): a replay that failed again belongs back in the list."""


class SyncMetrics(Protocol):
    """What the worker's loops count and time that their callers never see (Prometheus in the
    processes: ``adapters.prometheus``; ``adapters.memory.metrics`` in tests). Label values are
    bounded -- topics, systems, outcomes -- never a customer or an event."""

    def handled(self, topic: str, handled: Handled) -> None:
        """One delivery settled at one system (its outcome, and how long the change took)."""

    def retried(self, topic: str, failure: str) -> None:
        """An attempt failed and waits to be tried again (``failure``: transient, unexpected)."""

    def dead_lettered(self, topic: str) -> None:
        """A message was stored as a dead letter."""

    def replayed(self, topic: str) -> None:
        """A dead letter was published again."""

    def caught_up(self, system: str, *, listed: int, published: int, failed: bool) -> None:
        """One catch-up poll: the changes it listed, those it published (missed by webhooks)."""

    def reconciled(self, system: str, status: str, counts: Mapping[str, int]) -> None:
        """A reconcile run ended (``status``: done, failed) with what it found and fixed."""


class ConsumerLag(Protocol):
    async def lag(self) -> dict[tuple[str, str, int], int]:
        """Per worker group (its name: ``catalog`` or a system, application.sync.groups) and
        partition of the topics it reads: messages the group has not committed."""
