"""Dead letters: messages the worker gave up on, kept so they can be inspected and replayed."""

from __future__ import annotations

from datetime import datetime

import msgspec


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One message that failed for good, kept once per (topic, event_id).

    ``topic`` is the topic it came from (``sync.outbound``/``sync.inbound``), not the ``.dlq`` one,
    so that a replay knows where to send it back. ``created_at`` is when it (last) died: an event
    that dies again after a replay is the same letter, back in the list with its new error.
    """

    id: int
    topic: str
    key: str
    event_id: str
    payload: bytes
    error: str
    created_at: datetime
    replayed_at: datetime | None = None

    @property
    def replayed(self) -> bool:
        return self.replayed_at is not None
