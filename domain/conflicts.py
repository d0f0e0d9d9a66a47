"""What happens when the catalog and an external system change the same field before either synced."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class ConflictPolicy(StrEnum):
    """Settled at the hub, always between the catalog and one external system (a link): with
    several integrations, a change from one reaches the others through the catalog, so two
    external sides never meet except through it."""

    INTERNAL_WINS = "internal_wins"  # the catalog is the system of record
    EXTERNAL_WINS = "external_wins"  # the external system's value is kept (whichever system the link is to)
    LATEST_WINS = "latest_wins"  # the later change wins; on a tie the catalog does

    @classmethod
    def _missing_(cls, value: object) -> ConflictPolicy | None:
        # Its name from the days of Stripe alone, still accepted: it always meant "the external side".
        return cls.EXTERNAL_WINS if value == "stripe_wins" else None

    def external_wins(self, internal_changed_at: datetime, external_changed_at: datetime) -> bool:
        if self is ConflictPolicy.INTERNAL_WINS:
            return False
        if self is ConflictPolicy.EXTERNAL_WINS:
            return True
        # Stripe stamps events in whole seconds: compare at that resolution, and keep the
        # catalog's value on a tie so that the outcome never depends on delivery order.
        return int(external_changed_at.timestamp()) > int(internal_changed_at.timestamp())
