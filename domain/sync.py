"""Sync records: the history of every attempt to carry a change across a boundary."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class Direction(StrEnum):
    OUTBOUND = "outbound"  # catalog -> external system
    INBOUND = "inbound"  # external system -> catalog


class Operation(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class SyncStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"  # the last attempt failed (last_error says why); it is being tried again
    DEAD = "dead"  # gave up; waits in the dead-letter queue for a replay

    @property
    def settled(self) -> bool:
        return self in (SyncStatus.SUCCEEDED, SyncStatus.DEAD)


class SyncRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One change travelling in one direction to or from one system, keyed by (event, system, direction)."""

    event_id: str
    customer_id: int | None
    direction: Direction
    system: str
    operation: Operation
    status: SyncStatus
    attempts: int
    last_error: str | None
    note: str | None  # what the attempt decided: "no change", "echo", "conflict: ...", ...
    created_at: datetime
    updated_at: datetime

    @classmethod
    def pending(
        cls, event_id: str, customer_id: int | None, direction: Direction, system: str, operation: Operation, at: datetime
    ) -> SyncRecord:
        return cls(
            event_id=event_id, customer_id=customer_id, direction=direction, system=system, operation=operation,
            status=SyncStatus.PENDING, attempts=0, last_error=None, note=None, created_at=at, updated_at=at,
        )

    def succeeded(self, at: datetime, note: str | None = None, customer_id: int | None = None) -> SyncRecord:
        return msgspec.structs.replace(
            self, status=SyncStatus.SUCCEEDED, attempts=self.attempts + 1, last_error=None, note=note,
            customer_id=self.customer_id if customer_id is None else customer_id, updated_at=at,
        )

    def failed(self, at: datetime, error: str, *, dead: bool) -> SyncRecord:
        return msgspec.structs.replace(
            self, status=SyncStatus.DEAD if dead else SyncStatus.RETRYING, attempts=self.attempts + 1,
            last_error=error[:2000], updated_at=at,
        )

    def reopened(self, at: datetime) -> SyncRecord:
        """Pending again for a replay from the dead-letter queue: unsettled, so the handler runs it
        once more. Attempts and the last error stay as the history of what went wrong."""
        return msgspec.structs.replace(self, status=SyncStatus.PENDING, note="replayed", updated_at=at)
