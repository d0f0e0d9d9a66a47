"""Links between a catalog customer and its twin in an external system."""

from __future__ import annotations

from datetime import datetime

import msgspec

from domain.customer import Customer, CustomerData


class ExternalMapping(msgspec.Struct, frozen=True, kw_only=True):
    """Customer ``customer_id`` is ``external_id`` in ``system``.

    ``synced`` is the content both sides agreed on at ``synced_version`` of the customer: the
    baseline that tells our own echoes from real external changes, and local edits from
    conflicting ones.
    """

    customer_id: int
    system: str
    external_id: str
    synced: CustomerData
    synced_version: int
    synced_at: datetime

    def in_sync_with(self, customer: Customer) -> bool:
        caught_up = self.synced_version >= customer.version
        return caught_up and (customer.deleted or self.synced == customer.data)

    def synced_to(self, customer: Customer, external: CustomerData, at: datetime) -> ExternalMapping:
        return msgspec.structs.replace(self, synced=external, synced_version=customer.version, synced_at=at)

    def rebased(self, external: CustomerData, at: datetime) -> ExternalMapping:
        """A new baseline while the catalog still has changes of its own to send."""
        return msgspec.structs.replace(self, synced=external, synced_at=at)


class CreateIntent(msgspec.Struct, frozen=True, kw_only=True):
    """A create we are about to send, saved first: every later attempt, whatever event triggers it,
    repeats exactly this request (same idempotency key, same fields), so the external system
    answers with the customer it already made instead of making a second one."""

    customer_id: int
    system: str
    idempotency_key: str
    data: CustomerData
    created_at: datetime
