"""What the status screen and the metrics read and count."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

import msgspec

from domain.sync import Handled


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
