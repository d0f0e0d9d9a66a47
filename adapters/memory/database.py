"""An in-memory database with real transactions: a unit of work sees a private copy of every
table, committed atomically, and holds the one lock for its whole life (serializable)."""

from __future__ import annotations

import asyncio
import builtins
import copy
import itertools
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

import msgspec

from adapters.memory.reconcile import InMemoryReconcileRepository
from adapters.memory.retention import InMemoryRetention
from adapters.memory.status import InMemoryStatusRepository
from application.ports import (
    BindingRepository,
    CreateIntentRepository,
    Cursor,
    CursorRepository,
    CustomerRepository,
    DeadLetterRepository,
    Envelope,
    Inbox,
    InstallationRepository,
    MappingRepository,
    Outbox,
    OutboxRelayPort,
    PendingEvent,
    ReconcileRepository,
    RetentionRepository,
    StatusRepository,
    SyncRecordRepository,
)
from domain.binding import AccountBinding
from domain.customer import Customer, CustomerData, FieldTimes
from domain.dead_letters import DeadLetter
from domain.drift import Finding, ReconcileRun
from domain.errors import ConcurrentUpdate
from domain.mapping import CreateIntent, ExternalMapping
from domain.messages import CustomerChanged, ExternalCustomer
from domain.sync import Direction, SyncRecord


class Tables(msgspec.Struct):
    customers: dict[int, Customer] = msgspec.field(default_factory=dict)
    mappings: dict[tuple[int, str], ExternalMapping] = msgspec.field(default_factory=dict)
    create_intents: dict[tuple[int, str], CreateIntent] = msgspec.field(default_factory=dict)
    sync_records: dict[tuple[str, str, str], SyncRecord] = msgspec.field(default_factory=dict)
    inbox: dict[tuple[str, str], datetime] = msgspec.field(default_factory=dict)
    outbox: dict[int, tuple[CustomerChanged, datetime | None]] = msgspec.field(default_factory=dict)
    next_customer_id: int = 1
    next_outbox_position: int = 1
    next_record_seq: int = 1
    record_seq: dict[tuple[str, str, str], int] = msgspec.field(default_factory=dict)
    dead_letters: dict[int, DeadLetter] = msgspec.field(default_factory=dict)
    next_dead_letter_id: int = 1
    installation: str | None = None
    bindings: dict[str, AccountBinding] = msgspec.field(default_factory=dict)
    reconcile_runs: dict[int, ReconcileRun] = msgspec.field(default_factory=dict)
    next_run_id: int = 1
    findings: dict[tuple[int, str], Finding] = msgspec.field(default_factory=dict)
    next_finding_seq: int = 1
    # (run id, external id) -> (the record, or None once linked or set aside; decided)
    reconcile_seen: dict[tuple[int, str], tuple[ExternalCustomer | None, bool]] = msgspec.field(default_factory=dict)
    cursors: dict[tuple[str, str], Cursor] = msgspec.field(default_factory=dict)
    # Deleted customers whose personal data was scrubbed, and when (adapters.memory.retention).
    scrubbed: dict[int, datetime] = msgspec.field(default_factory=dict)

    def copy(self) -> Tables:
        # Values are immutable structs, so copying the dicts is a full snapshot.
        return Tables(**{f: copy.copy(getattr(self, f)) for f in self.__struct_fields__})


class InMemoryDatabase:
    def __init__(self) -> None:
        self.tables = Tables()
        self.lock = asyncio.Lock()
        self.outbox_written = asyncio.Event()
        self.transactions = 0  # units of work entered, as PostgreSQL's pg_stat_database counts them

    def unit_of_work(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self)


class InMemoryUnitOfWork:
    # The ports (application.ports.UnitOfWork), as each repository is typed: mypy checks every one
    # against its port where it is assigned.
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

    def __init__(self, db: InMemoryDatabase) -> None:
        self._db = db
        self._tables = Tables()

    async def __aenter__(self) -> Self:
        await self._db.lock.acquire()
        self._db.transactions += 1
        self._tables = self._db.tables.copy()
        self.customers = InMemoryCustomerRepository(self._tables)
        self.mappings = InMemoryMappingRepository(self._tables)
        self.create_intents = InMemoryCreateIntentRepository(self._tables)
        self.sync_records = InMemorySyncRecordRepository(self._tables)
        self.inbox = InMemoryInbox(self._tables)
        self.outbox = self.relay = InMemoryOutbox(self._tables)  # both sides of the outbox
        self.dead_letters = InMemoryDeadLetterRepository(self._tables)
        self.installation = InMemoryInstallationRepository(self._tables)
        self.bindings = InMemoryBindingRepository(self._tables)
        self.reconcile = InMemoryReconcileRepository(self._tables)
        self.retention = InMemoryRetention(self._tables)
        self.cursors = InMemoryCursorRepository(self._tables)
        self.status = InMemoryStatusRepository(self._tables)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._db.lock.release()

    async def commit(self) -> None:
        wrote_outbox = self._tables.next_outbox_position != self._db.tables.next_outbox_position
        # The database gets a snapshot; this unit of work keeps its own tables for any later work.
        self._db.tables = self._tables.copy()
        if wrote_outbox:
            self._db.outbox_written.set()


class InMemoryCustomerRepository:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def add(self, data: CustomerData, at: datetime) -> Customer:
        customer = Customer(
            id=self._t.next_customer_id, data=data, version=1, created_at=at, updated_at=at, field_times=FieldTimes(at, at)
        )
        self._t.next_customer_id += 1
        self._t.customers[customer.id] = customer
        return customer

    async def get(self, customer_id: int) -> Customer | None:
        return self._t.customers.get(customer_id)

    async def save(self, customer: Customer) -> None:
        stored = self._t.customers.get(customer.id)
        if stored == customer:
            return
        if stored is None or stored.version != customer.version - 1:
            raise ConcurrentUpdate(customer.id)
        self._t.customers[customer.id] = customer

    async def page(self, *, after_id: int | None, limit: int, email: str | None = None) -> list[Customer]:
        wanted = email.lower() if email is not None else None  # lower(), as PostgreSQL compares
        rows = (
            c
            for cid, c in sorted(self._t.customers.items())
            if not c.deleted
            and (after_id is None or cid > after_id)
            and (wanted is None or (c.email is not None and c.email.lower() == wanted))
        )
        return list(itertools.islice(rows, limit))

    async def get_many(self, customer_ids: Sequence[int]) -> dict[int, Customer]:
        return {i: self._t.customers[i] for i in customer_ids if i in self._t.customers}


class InMemoryMappingRepository:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def get(self, customer_id: int, system: str) -> ExternalMapping | None:
        return self._t.mappings.get((customer_id, system))

    async def by_external_id(self, system: str, external_id: str) -> ExternalMapping | None:
        return next((m for m in self._t.mappings.values() if m.system == system and m.external_id == external_id), None)

    async def by_external_ids(self, system: str, external_ids: Sequence[str]) -> dict[str, ExternalMapping]:
        wanted = set(external_ids)
        return {m.external_id: m for m in self._t.mappings.values() if m.system == system and m.external_id in wanted}

    async def for_customer(self, customer_id: int) -> list[ExternalMapping]:
        return sorted((m for (cid, _), m in self._t.mappings.items() if cid == customer_id), key=lambda m: m.system)

    async def latest(self, system: str) -> ExternalMapping | None:
        working = [m for m in self._t.mappings.values() if m.system == system and m.broken is None]
        return max(working, key=lambda m: (m.synced_at, m.customer_id), default=None)

    async def save(self, mapping: ExternalMapping) -> ExternalMapping:
        if mapping.customer_id not in self._t.customers:
            raise ValueError(f"customer {mapping.customer_id} does not exist")
        clash = await self.by_external_id(mapping.system, mapping.external_id)
        if clash is not None and clash.customer_id != mapping.customer_id:
            raise ConcurrentUpdate(mapping.customer_id)  # someone linked that external id since
        stored = self._t.mappings.get((mapping.customer_id, mapping.system))
        # The version read must still be the stored one: a mapping read in one unit of work and
        # written in a later one (the worker's read, external call, store) must not overwrite a
        # write made in between -- the race PostgreSQL's READ COMMITTED allows without this guard.
        if (stored.version if stored is not None else 0) != mapping.version:
            raise ConcurrentUpdate(mapping.customer_id)
        saved = msgspec.structs.replace(mapping, version=mapping.version + 1)
        self._t.mappings[(mapping.customer_id, mapping.system)] = saved
        return saved

    async def remove(self, customer_id: int, system: str) -> None:
        self._t.mappings.pop((customer_id, system), None)


class InMemoryCreateIntentRepository:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def get(self, customer_id: int, system: str) -> CreateIntent | None:
        return self._t.create_intents.get((customer_id, system))

    async def add(self, intent: CreateIntent) -> None:
        self._t.create_intents.setdefault((intent.customer_id, intent.system), intent)

    async def remove(self, customer_id: int, system: str) -> None:
        self._t.create_intents.pop((customer_id, system), None)


class InMemorySyncRecordRepository:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def get(self, event_id: str, system: str, direction: Direction) -> SyncRecord | None:
        return self._t.sync_records.get((event_id, system, direction.value))

    async def save(self, record: SyncRecord) -> None:
        key = (record.event_id, record.system, record.direction.value)
        if key not in self._t.record_seq:
            self._t.record_seq[key] = self._t.next_record_seq
            self._t.next_record_seq += 1
        self._t.sync_records[key] = record

    async def for_customer(self, customer_id: int, limit: int) -> list[SyncRecord]:
        mine = [k for k, r in self._t.sync_records.items() if r.customer_id == customer_id]
        mine.sort(key=lambda k: self._t.record_seq[k], reverse=True)
        return [self._t.sync_records[k] for k in mine[:limit]]

    async def for_event(self, event_id: str) -> list[SyncRecord]:
        mine = sorted((k for k in self._t.sync_records if k[0] == event_id), key=lambda k: self._t.record_seq[k])
        return [self._t.sync_records[k] for k in mine]


class InMemoryInbox:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def seen(self, system: str, event_id: str) -> bool:
        return (system, event_id) in self._t.inbox

    async def seen_many(self, system: str, event_ids: Sequence[str]) -> set[str]:
        return {event_id for event_id in event_ids if (system, event_id) in self._t.inbox}

    async def add(self, system: str, event_id: str, at: datetime) -> None:
        self._t.inbox[(system, event_id)] = at


class InMemoryOutbox:
    """Both sides of the outbox: the writers' ``add`` and the relay's ``claim``/``mark_published``."""

    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def add(self, event: CustomerChanged) -> None:
        self._t.outbox[self._t.next_outbox_position] = (event, None)
        self._t.next_outbox_position += 1

    async def claim(self, limit: int) -> list[PendingEvent]:
        pending = (PendingEvent(pos, event) for pos, (event, published) in self._t.outbox.items() if published is None)
        return list(itertools.islice(pending, limit))

    async def mark_published(self, positions: Sequence[int], at: datetime) -> None:
        for pos in positions:
            if pos in self._t.outbox:
                self._t.outbox[pos] = (self._t.outbox[pos][0], at)


class InMemoryDeadLetterRepository:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def add(self, envelope: Envelope, at: datetime) -> DeadLetter:
        existing = next(
            (d for d in self._t.dead_letters.values() if (d.topic, d.event_id) == (envelope.topic, envelope.event_id)), None
        )
        if existing is None:
            letter_id, self._t.next_dead_letter_id = self._t.next_dead_letter_id, self._t.next_dead_letter_id + 1
        else:
            letter_id = existing.id
        letter = DeadLetter(
            id=letter_id,
            topic=envelope.topic,
            key=envelope.key,
            event_id=envelope.event_id,
            payload=envelope.payload,
            error=envelope.error or "",
            created_at=at,
            replayed_at=None,
        )
        self._t.dead_letters[letter_id] = letter
        return letter

    async def list(self, limit: int, include_replayed: bool = False) -> list[DeadLetter]:
        letters = [d for d in self._t.dead_letters.values() if include_replayed or not d.replayed]
        letters.sort(key=lambda d: (d.created_at, d.id), reverse=True)
        return letters[: max(0, limit)]

    async def get(self, letter_id: int) -> DeadLetter | None:
        return self._t.dead_letters.get(letter_id)

    # ``builtins.list``: inside this class ``list`` names the method above.
    async def unreplayed(self, ids: Sequence[int] | None) -> builtins.list[DeadLetter]:
        # The unit of work holds the database's only lock: nobody else can replay these meanwhile.
        wanted = None if ids is None else set(ids)
        return [
            d
            for letter_id, d in sorted(self._t.dead_letters.items())
            if not d.replayed and (wanted is None or letter_id in wanted)
        ]

    async def mark_replayed(self, letter: DeadLetter, at: datetime) -> None:
        stored = self._t.dead_letters.get(letter.id)
        if stored is not None and stored.created_at == letter.created_at and not stored.replayed:
            self._t.dead_letters[letter.id] = msgspec.structs.replace(stored, replayed_at=at)


class InMemoryInstallationRepository:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def get(self) -> str | None:
        return self._t.installation

    async def add(self, installation_id: str, at: datetime) -> str:
        if self._t.installation is None:
            self._t.installation = installation_id
        return self._t.installation


class InMemoryBindingRepository:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def get(self, system: str) -> AccountBinding | None:
        return self._t.bindings.get(system)

    async def add(self, binding: AccountBinding) -> AccountBinding:
        return self._t.bindings.setdefault(binding.system, binding)

    async def save(self, binding: AccountBinding) -> None:
        self._t.bindings[binding.system] = binding


class InMemoryCursorRepository:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    async def get(self, system: str, name: str) -> Cursor | None:
        return self._t.cursors.get((system, name))

    async def lease(self, system: str, name: str, owner: str, until: datetime, now: datetime) -> Cursor | None:
        cursor = self._t.cursors.get((system, name)) or Cursor(system=system, name=name, position=None, updated_at=now)
        held = cursor.leased_by is not None and cursor.leased_until is not None and cursor.leased_until > now
        if held and cursor.leased_by != owner:
            return None
        cursor = msgspec.structs.replace(cursor, leased_by=owner, leased_until=until)
        self._t.cursors[(system, name)] = cursor
        return cursor

    async def advance(self, system: str, name: str, owner: str, position: str, at: datetime) -> bool:
        cursor = self._t.cursors.get((system, name))
        if cursor is None or cursor.leased_by != owner:
            return False
        self._t.cursors[(system, name)] = msgspec.structs.replace(cursor, position=position, updated_at=at)
        return True

    async def release(self, system: str, name: str, owner: str) -> None:
        cursor = self._t.cursors.get((system, name))
        if cursor is not None and cursor.leased_by == owner:
            self._t.cursors[(system, name)] = msgspec.structs.replace(cursor, leased_by=None, leased_until=None)
