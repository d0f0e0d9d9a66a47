"""The storage ports on PostgreSQL, as SQLAlchemy Core statements on the unit of work's connection.

Ids are bigint: an id outside that range cannot exist, so lookups answer "not found" instead of
letting the driver fail to encode it (an API path like /customers/99999999999999999999 is a 404).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Row, Select, Text, bindparam, cast, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.postgres.tables import customers, external_mappings, inbox, outbox, sync_records
from application.ports import PendingEvent
from domain.customer import Customer, CustomerData, FieldTimes
from domain.errors import ConcurrentUpdate
from domain.mapping import ExternalMapping, FieldWrite, SentValue
from domain.messages import CustomerChanged, decode, encode
from domain.sync import Direction, Operation, SyncRecord, SyncStatus

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


def _is_bigint(value: int) -> bool:
    return BIGINT_MIN <= value <= BIGINT_MAX


def _row_limit(limit: int) -> int:
    # Like slicing a list: a negative limit yields nothing rather than a database error.
    return max(0, min(limit, BIGINT_MAX))


# The hottest statements, built once with bind parameters: building a statement per call (values,
# coercions, its cache key) cost more Python than executing it (py-spy, bench/api creates).
_INSERT_CUSTOMER = (
    customers.insert()
    .values(
        name=bindparam("name"),
        email=bindparam("email"),
        version=1,
        created_at=bindparam("at"),
        updated_at=bindparam("at"),
        deleted=False,
        name_changed_at=bindparam("at"),
        email_changed_at=bindparam("at"),
    )
    .returning(customers.c.id)
)
_CUSTOMER_BY_ID = select(customers).where(customers.c.id == bindparam("id"))
# Bound as text and cast by the server: the JSON type's own bind would re-encode the string.
_INSERT_OUTBOX = outbox.insert().values(
    event_id=bindparam("event_id"), customer_id=bindparam("customer_id"), payload=cast(bindparam("payload", type_=Text), JSONB)
)

_MAPPING = select(external_mappings).where(
    external_mappings.c.customer_id == bindparam("customer_id"), external_mappings.c.system == bindparam("system")
)
_MAPPING_VALUES = ("external_id", "synced_name", "synced_email", "synced_version", "synced_at", "broken", "version")
_MAPPING_JSON = ("external_writes", "sent")
# Version-guarded: see SqlAlchemyMappingRepository.save.
_UPDATE_MAPPING = (
    update(external_mappings)
    .where(
        external_mappings.c.customer_id == bindparam("key_customer_id"),
        external_mappings.c.system == bindparam("key_system"),
        external_mappings.c.version == bindparam("key_version"),
    )
    .values(
        **{name: bindparam(name) for name in _MAPPING_VALUES},
        **{name: cast(bindparam(name, type_=Text), JSONB) for name in _MAPPING_JSON},
    )
)
_SYNC_RECORD = select(sync_records).where(
    sync_records.c.event_id == bindparam("event_id"),
    sync_records.c.system == bindparam("system"),
    sync_records.c.direction == bindparam("direction"),
)

_RECORD_FIELDS = (
    "event_id",
    "system",
    "direction",
    "customer_id",
    "operation",
    "status",
    "attempts",
    "last_error",
    "note",
    "created_at",
    "updated_at",
)
_RECORD_KEY = ("event_id", "system", "direction")
_insert_record = insert(sync_records).values({name: bindparam(name) for name in _RECORD_FIELDS})
# The id is not in the SET list: a replaced record keeps its place in the history.
_SAVE_SYNC_RECORD = _insert_record.on_conflict_do_update(
    index_elements=[sync_records.c[name] for name in _RECORD_KEY],
    set_={name: _insert_record.excluded[name] for name in _RECORD_FIELDS if name not in _RECORD_KEY},
)


class SqlAlchemyCustomerRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection
        # Customers this transaction inserted, as inserted: saving one unchanged (a create records
        # its change right away) is known to be a no-op without the guarded UPDATE and re-read.
        self._inserted: dict[int, Customer] = {}

    async def add(self, data: CustomerData, at: datetime) -> Customer:
        times = FieldTimes(name=at, email=at)
        customer_id = await self._c.scalar(_INSERT_CUSTOMER, {"name": data.name, "email": data.email, "at": at})
        customer = Customer(id=customer_id, data=data, version=1, created_at=at, updated_at=at, field_times=times)
        self._inserted[customer_id] = customer
        return customer

    async def get(self, customer_id: int) -> Customer | None:
        if not _is_bigint(customer_id):
            return None
        row = (await self._c.execute(_CUSTOMER_BY_ID, {"id": customer_id})).first()
        return None if row is None else _customer(row)

    async def save(self, customer: Customer) -> None:
        if self._inserted.get(customer.id) == customer:
            return
        self._inserted.pop(customer.id, None)
        if _is_bigint(customer.id):
            # The version guard makes the update conditional on nobody having saved in between;
            # under READ COMMITTED a concurrent committed save is re-checked, so it cannot slip past.
            result = await self._c.execute(
                update(customers)
                .where(customers.c.id == customer.id, customers.c.version == customer.version - 1)
                .values(
                    name=customer.data.name,
                    email=customer.data.email,
                    version=customer.version,
                    updated_at=customer.updated_at,
                    deleted=customer.deleted,
                    name_changed_at=customer.field_times.name,
                    email_changed_at=customer.field_times.email,
                )
            )
            if result.rowcount == 1:
                return
        # Saving what is already stored is a no-op (the version did not move), not a conflict.
        if await self.get(customer.id) != customer:
            raise ConcurrentUpdate(customer.id)

    async def page(self, *, after_id: int | None, limit: int, email: str | None = None) -> list[Customer]:
        query = select(customers).where(customers.c.deleted.is_(False)).order_by(customers.c.id).limit(_row_limit(limit))
        if after_id is not None and after_id > BIGINT_MAX:
            return []
        if after_id is not None and after_id >= BIGINT_MIN:
            query = query.where(customers.c.id > after_id)
        if email is not None:
            # Exactly the indexed expression (ix_customers_lower_email), so the index is used.
            query = query.where(func.lower(customers.c.email) == func.lower(email))
        return [_customer(row) for row in await self._c.execute(query)]

    async def get_many(self, customer_ids: Sequence[int]) -> dict[int, Customer]:
        ids = sorted({i for i in customer_ids if _is_bigint(i)})
        if not ids:
            return {}
        return {row.id: _customer(row) for row in await self._c.execute(select(customers).where(customers.c.id.in_(ids)))}


def _customer(row: Row[Any]) -> Customer:
    return Customer(
        id=row.id,
        data=CustomerData(row.name, row.email),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted=row.deleted,
        field_times=FieldTimes(name=row.name_changed_at, email=row.email_changed_at),
    )


class SqlAlchemyMappingRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def get(self, customer_id: int, system: str) -> ExternalMapping | None:
        if not _is_bigint(customer_id):
            return None
        return await self._one(_MAPPING, {"customer_id": customer_id, "system": system})

    async def by_external_id(self, system: str, external_id: str) -> ExternalMapping | None:
        m = external_mappings.c
        return await self._one(select(external_mappings).where(m.system == system, m.external_id == external_id))

    async def by_external_ids(self, system: str, external_ids: Sequence[str]) -> dict[str, ExternalMapping]:
        if not external_ids:
            return {}
        m = external_mappings.c
        query = select(external_mappings).where(m.system == system, m.external_id.in_(list(set(external_ids))))
        return {row.external_id: _mapping(row) for row in await self._c.execute(query)}

    async def for_customer(self, customer_id: int) -> list[ExternalMapping]:
        if not _is_bigint(customer_id):
            return []
        m = external_mappings.c
        # COLLATE "C": code-point order, like sorting str in Python, whatever the database's locale.
        query = select(external_mappings).where(m.customer_id == customer_id).order_by(m.system.collate("C"))
        return [_mapping(row) for row in await self._c.execute(query)]

    async def latest(self, system: str) -> ExternalMapping | None:
        m = external_mappings.c
        query = (
            select(external_mappings)
            .where(m.system == system, m.broken.is_(None))
            .order_by(m.synced_at.desc(), m.customer_id.desc())
            .limit(1)
        )
        return await self._one(query)

    async def save(self, mapping: ExternalMapping) -> ExternalMapping:
        """Insert (version 0: not stored yet), or update only if the stored version is still the
        one read -- under READ COMMITTED the WHERE is re-checked against a concurrent committed
        write, so a stale baseline can never overwrite a fresh one. Linking an external id that
        another customer holds is refused the same way (ConcurrentUpdate): someone linked it since."""
        values = {
            "external_id": mapping.external_id,
            "synced_name": mapping.synced.name,
            "synced_email": mapping.synced.email,
            "synced_version": mapping.synced_version,
            "synced_at": mapping.synced_at,
            "broken": mapping.broken,
            "version": mapping.version + 1,
        }
        if mapping.version == 0:
            statement = (
                insert(external_mappings)
                .values(
                    customer_id=mapping.customer_id,
                    system=mapping.system,
                    external_writes=_json(mapping.external_writes),
                    sent=_json(mapping.sent),
                    **values,
                )
                .on_conflict_do_nothing()  # either key: (customer_id, system) or (system, external_id)
            )
            result = await self._c.execute(statement)
        else:
            result = await self._c.execute(
                _UPDATE_MAPPING,
                {
                    **values,
                    "external_writes": msgspec.json.encode(mapping.external_writes).decode(),
                    "sent": msgspec.json.encode(mapping.sent).decode(),
                    "key_customer_id": mapping.customer_id,
                    "key_system": mapping.system,
                    "key_version": mapping.version,
                },
            )
        if result.rowcount != 1:
            raise ConcurrentUpdate(mapping.customer_id)
        return msgspec.structs.replace(mapping, version=mapping.version + 1)

    async def remove(self, customer_id: int, system: str) -> None:
        if _is_bigint(customer_id):
            m = external_mappings.c
            await self._c.execute(external_mappings.delete().where(m.customer_id == customer_id, m.system == system))

    async def _one(self, query: Select[Any], params: dict[str, object] | None = None) -> ExternalMapping | None:
        row = (await self._c.execute(query, params)).first()
        return None if row is None else _mapping(row)


def _mapping(row: Row[Any]) -> ExternalMapping:
    return ExternalMapping(
        customer_id=row.customer_id,
        system=row.system,
        external_id=row.external_id,
        synced=CustomerData(row.synced_name, row.synced_email),
        synced_version=row.synced_version,
        synced_at=row.synced_at,
        external_writes=msgspec.convert(row.external_writes, dict[str, FieldWrite]),
        broken=row.broken,
        version=row.version,
        sent=msgspec.convert(row.sent, dict[str, list[SentValue]]),
    )


def _json(value: object) -> object:
    # Bound as text and cast by the server, like the outbox payload.
    return cast(literal(msgspec.json.encode(value).decode(), Text), JSONB)


class SqlAlchemySyncRecordRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def get(self, event_id: str, system: str, direction: Direction) -> SyncRecord | None:
        row = (
            await self._c.execute(_SYNC_RECORD, {"event_id": event_id, "system": system, "direction": direction.value})
        ).first()
        return None if row is None else _sync_record(row)

    async def save(self, record: SyncRecord) -> None:
        values = {
            "event_id": record.event_id,
            "system": record.system,
            "direction": record.direction.value,
            "customer_id": record.customer_id,
            "operation": record.operation.value,
            "status": record.status.value,
            "attempts": record.attempts,
            "last_error": record.last_error,
            "note": record.note,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }
        await self._c.execute(_SAVE_SYNC_RECORD, values)

    async def for_customer(self, customer_id: int, limit: int) -> list[SyncRecord]:
        if not _is_bigint(customer_id):
            return []
        s = sync_records.c
        query = select(sync_records).where(s.customer_id == customer_id).order_by(s.id.desc()).limit(_row_limit(limit))
        return [_sync_record(row) for row in await self._c.execute(query)]

    async def for_event(self, event_id: str) -> list[SyncRecord]:
        query = select(sync_records).where(sync_records.c.event_id == event_id).order_by(sync_records.c.id)
        return [_sync_record(row) for row in await self._c.execute(query)]


def _sync_record(row: Row[Any]) -> SyncRecord:
    return SyncRecord(
        event_id=row.event_id,
        customer_id=row.customer_id,
        direction=Direction(row.direction),
        system=row.system,
        operation=Operation(row.operation),
        status=SyncStatus(row.status),
        attempts=row.attempts,
        last_error=row.last_error,
        note=row.note,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlAlchemyInbox:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def seen(self, system: str, event_id: str) -> bool:
        return bool(await self._c.scalar(select(exists().where(inbox.c.system == system, inbox.c.event_id == event_id))))

    async def seen_many(self, system: str, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        query = select(inbox.c.event_id).where(inbox.c.system == system, inbox.c.event_id.in_(list(event_ids)))
        return set((await self._c.scalars(query)).all())

    async def add(self, system: str, event_id: str, at: datetime) -> None:
        # A plain insert, on purpose: if two workers race past ``seen`` with the same event, the
        # second blocks on the first's key and then fails, so its transaction (and its second
        # application of the event) rolls back. An upsert would let both commit.
        await self._c.execute(inbox.insert().values(system=system, event_id=event_id, processed_at=at))


# The advisory lock key the relays take turns on (any bigint of our own: "custsync" in ASCII).
RELAY_LOCK = int.from_bytes(b"custsync", "big") >> 1


def oldest_pending(limit: int) -> Select[Any]:
    """The relay's read: a range of the pending index, as long as the batch."""
    return (
        select(outbox.c.position, cast(outbox.c.payload, Text).label("payload"))
        .where(outbox.c.published_at.is_(None))
        .order_by(outbox.c.position)
        .limit(limit)
    )


class SqlAlchemyOutbox:
    """Both sides of the outbox: the writers' ``add`` and the relay's ``claim``/``mark_published``."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def add(self, event: CustomerChanged) -> None:
        await self._c.execute(
            _INSERT_OUTBOX, {"event_id": event.event_id, "customer_id": event.customer_id, "payload": encode(event).decode()}
        )

    async def claim(self, limit: int) -> list[PendingEvent]:
        """The ``limit`` oldest unpublished events, or none while another relay holds a batch.

        One relay at a time (a transaction-scoped advisory lock, taken without waiting): what it
        claims is plainly the oldest pending events, read from the pending index, so a claim costs
        O(``limit``) however many events wait -- even 200,000 of one customer. The next relay
        claims after this one's mark committed, so a customer's events go out in order whichever
        relay publishes them; a relay that finds the lock taken sleeps until woken.

        Position order is commit order per customer because every event is written in the same
        transaction as its customer's row, whose update serializes writers of one customer.
        """
        if not await self._c.scalar(select(func.pg_try_advisory_xact_lock(RELAY_LOCK))):
            return []
        return [
            PendingEvent(row.position, decode(row.payload.encode(), CustomerChanged))
            for row in await self._c.execute(oldest_pending(_row_limit(limit)))
        ]

    async def mark_published(self, positions: Sequence[int], at: datetime) -> None:
        wanted = [p for p in positions if _is_bigint(p)]
        if wanted:
            await self._c.execute(update(outbox).where(outbox.c.position.in_(wanted)).values(published_at=at))
