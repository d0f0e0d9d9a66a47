"""Storage of the catalog and of what sync remembers about each customer and system."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from domain.binding import AccountBinding
from domain.customer import Customer, CustomerData
from domain.mapping import CreateIntent, ExternalMapping
from domain.sync import Direction, SyncRecord


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
