"""What retention reads and deletes (application/sync/retention.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import msgspec

from domain.customer import Customer
from domain.mapping import ExternalMapping


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
