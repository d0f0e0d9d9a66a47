"""Storage that makes delivery effectively once: the outbox, the inbox, the relay, the dead letters."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from application.ports.messaging import Envelope
from domain.dead_letters import DeadLetter
from domain.messages import CustomerChanged


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
