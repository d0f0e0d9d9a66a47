"""The unit of work on PostgreSQL: one pooled connection and its transaction per ``async with``."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.postgres.accounts import SqlAlchemyBindingRepository, SqlAlchemyInstallationRepository
from adapters.postgres.create_intents import SqlAlchemyCreateIntentRepository
from adapters.postgres.cursors import SqlAlchemyCursorRepository
from adapters.postgres.dead_letters import SqlAlchemyDeadLetterRepository
from adapters.postgres.errors import is_unavailable, unavailable
from adapters.postgres.reconcile import SqlAlchemyReconcileRepository
from adapters.postgres.repositories import (
    SqlAlchemyCustomerRepository,
    SqlAlchemyInbox,
    SqlAlchemyMappingRepository,
    SqlAlchemyOutbox,
    SqlAlchemySyncRecordRepository,
)
from adapters.postgres.retention import SqlAlchemyRetention
from adapters.postgres.status import SqlAlchemyStatusRepository
from application.errors import StorageUnavailable
from application.ports import (
    BindingRepository,
    CreateIntentRepository,
    CursorRepository,
    CustomerRepository,
    DeadLetterRepository,
    Inbox,
    InstallationRepository,
    MappingRepository,
    Outbox,
    OutboxRelayPort,
    ReconcileRepository,
    RetentionRepository,
    StatusRepository,
    SyncRecordRepository,
)

log = logging.getLogger(__name__)


class SqlAlchemyUnitOfWork:
    """READ COMMITTED, like most OLTP services: what keeps concurrent writers correct is explicit —
    optimistic versions on customers, unique keys on mappings, the inbox and sync records, and
    row locks on the outbox — not the isolation level.

    Like the in-memory one it may be entered again after it was left (each time on a fresh
    connection), and it stays usable after ``commit()``: the next statement opens a new transaction.
    """

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

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        if self._connection is not None:
            raise RuntimeError("this unit of work is already in use")
        try:
            connection = await self._engine.connect()
        except Exception as exc:
            if is_unavailable(exc):
                raise unavailable(exc) from exc
            raise
        try:
            await connection.begin()
        except BaseException as exc:
            await connection.close()
            if isinstance(exc, Exception) and is_unavailable(exc):
                raise unavailable(exc) from exc
            raise
        self._connection = connection
        self.customers = SqlAlchemyCustomerRepository(connection)
        self.mappings = SqlAlchemyMappingRepository(connection)
        self.sync_records = SqlAlchemySyncRecordRepository(connection)
        self.inbox = SqlAlchemyInbox(connection)
        self.outbox = self.relay = SqlAlchemyOutbox(connection)  # both sides of the outbox
        self.dead_letters = SqlAlchemyDeadLetterRepository(connection)
        self.create_intents = SqlAlchemyCreateIntentRepository(connection)
        self.installation = SqlAlchemyInstallationRepository(connection)
        self.bindings = SqlAlchemyBindingRepository(connection)
        self.reconcile = SqlAlchemyReconcileRepository(connection)
        self.retention = SqlAlchemyRetention(connection)
        self.cursors = SqlAlchemyCursorRepository(connection)
        self.status = SqlAlchemyStatusRepository(connection)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.close()  # rolls back whatever was not committed
        except Exception as close_error:
            if exc is None:
                if is_unavailable(close_error):
                    raise unavailable(close_error) from close_error
                raise
            # The connection often broke for the very reason the block failed: let the caller see
            # that first error, not the rollback's. The pool discards a broken connection anyway.
            log.debug("rollback after %s failed", type(exc).__name__, exc_info=True)
        # A lost connection or a restarting server, whatever statement met it: one error that
        # says "wait and retry", for the worker and the API alike (503), never a driver trace.
        if isinstance(exc, Exception) and not isinstance(exc, StorageUnavailable) and is_unavailable(exc):
            raise unavailable(exc) from exc

    async def commit(self) -> None:
        if self._connection is None:
            raise RuntimeError("commit() outside `async with` of the unit of work")
        await self._connection.commit()  # a failure here is translated by __aexit__


class SqlAlchemyUnitOfWorkFactory:
    """``factory()`` is a new unit of work on the shared engine (satisfies UnitOfWorkFactory)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self) -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(self.engine)
