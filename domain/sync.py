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


FAILING = frozenset({SyncStatus.RETRYING, SyncStatus.DEAD})  # the last attempt failed
UNFINISHED = frozenset({SyncStatus.PENDING, SyncStatus.RETRYING})  # still to be (re)tried: a call may still land


class Outcome(StrEnum):
    """What handling one change at one system came to, for counting (``custsync_deliveries_total``)."""

    SYNCED = "synced"  # a change was carried across (written there, or applied here)
    UNCHANGED = "unchanged"  # nothing to carry: already equal, already deleted, never synced, ignored
    ECHO = "echo"  # our own write coming back, or a change not sent back to where it came from
    CONFLICT = "conflict"  # both sides changed a field: settled (or held) by the conflict policy
    DUPLICATE = "duplicate"  # delivered again: already handled (the inbox, or a settled record)


# The notes the use cases write (application.sync.outbound/inbound), by what they mean. A note is
# history for a person; these prefixes are the part of it that is stable.
_UNCHANGED = (
    "no change",
    "already",
    "never synced",
    "ignored",
    "unknown customer",
    "customer is deleted here",
    "tagged by another installation",
    "carries internal_id",
)


def outcome_of(note: str | None) -> Outcome:
    """The outcome a settled record's note tells (no note: the change was carried as it was)."""
    if note is None:
        return Outcome.SYNCED
    if "conflict on" in note or note.startswith("superseded"):
        return Outcome.CONFLICT
    if "echo" in note or note.startswith("no change there"):
        return Outcome.ECHO
    if note.startswith(_UNCHANGED):
        return Outcome.UNCHANGED
    return Outcome.SYNCED


class Handled(msgspec.Struct, frozen=True):
    """What one delivery did at one system: what the worker counts and times."""

    system: str
    direction: Direction
    outcome: Outcome
    latency: float | None = None  # seconds from the change (catalog commit, or the event there) to its settling

    @classmethod
    def settled(cls, record: SyncRecord, since: datetime) -> Handled:
        latency = max(0.0, (record.updated_at - since).total_seconds())
        return cls(record.system, record.direction, outcome_of(record.note), latency)


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
            event_id=event_id,
            customer_id=customer_id,
            direction=direction,
            system=system,
            operation=operation,
            status=SyncStatus.PENDING,
            attempts=0,
            last_error=None,
            note=None,
            created_at=at,
            updated_at=at,
        )

    def succeeded(self, at: datetime, note: str | None = None, customer_id: int | None = None) -> SyncRecord:
        return msgspec.structs.replace(
            self,
            status=SyncStatus.SUCCEEDED,
            attempts=self.attempts + 1,
            last_error=None,
            note=note,
            customer_id=self.customer_id if customer_id is None else customer_id,
            updated_at=at,
        )

    def failed(self, at: datetime, error: str, *, dead: bool) -> SyncRecord:
        return msgspec.structs.replace(
            self,
            status=SyncStatus.DEAD if dead else SyncStatus.RETRYING,
            attempts=self.attempts + 1,
            last_error=error[:2000],
            updated_at=at,
        )

    def reopened(self, at: datetime) -> SyncRecord:
        """Pending again for a replay from the dead-letter queue: unsettled, so the handler runs it
        once more. Attempts and the last error stay as the history of what went wrong."""
        return msgspec.structs.replace(self, status=SyncStatus.PENDING, note="replayed", updated_at=at)
