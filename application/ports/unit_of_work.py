"""One transaction over every repository."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from application.ports.catalog import (
    BindingRepository,
    CreateIntentRepository,
    CursorRepository,
    CustomerRepository,
    InstallationRepository,
    MappingRepository,
    SyncRecordRepository,
)
from application.ports.delivery import DeadLetterRepository, Inbox, Outbox, OutboxRelayPort
from application.ports.reconcile import ReconcileRepository
from application.ports.retention import RetentionRepository
from application.ports.status import StatusRepository


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
