"""An external system (Stripe, Salesforce), and the webhooks of those that send them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

import msgspec

from domain.binding import ExternalAccount
from domain.customer import CustomerData
from domain.errors import FieldError
from domain.messages import ExternalChange, ExternalCustomer
from domain.ownership import OwnershipTag


class Page(msgspec.Struct, frozen=True):
    customers: list[ExternalCustomer]
    next_cursor: str | None


class ChangePage(msgspec.Struct, frozen=True):
    changes: list[ExternalChange]
    next_cursor: str | None


class Integration(Protocol):
    """An external system that holds customers (Stripe, and later Salesforce and others).

    Raises only the errors in ``application.errors``. ``ExternalCustomerMissing`` means the
    system does not know the id -- never that the customer was deleted (see ``domain.safety``).
    """

    system: str

    async def account(self) -> ExternalAccount:
        """The account (and mode) the credentials belong to."""

    async def create_customer(self, data: CustomerData, *, tag: OwnershipTag, idempotency_key: str) -> ExternalCustomer:
        """Create the customer, tagged as ours; the same key never creates twice. A failure the
        system saved under the key raises IdempotentReplayFailure."""

    def field_errors(self, changes: Mapping[str, str | None]) -> list[FieldError]:
        """What the system would refuse of these catalog field values (its own limits, beyond the
        catalog's), so that the API refuses them before anything is stored."""

    async def update_customer(
        self, external_id: str, changes: Mapping[str, str | None], *, idempotency_key: str | None = None
    ) -> ExternalCustomer | None:
        """Send only ``changes`` (field -> new value, ``None`` clears). The key marks the write
        as ours in the events it causes (a system without keys: repeating a write is harmless).
        The record as the answer shows it, when the system answers with one (Stripe does; a
        Salesforce PATCH answers 204): sync never relies on it, a re-fetch does that."""

    async def link_customer(self, external_id: str, tag: OwnershipTag, *, idempotency_key: str | None = None) -> None:
        """Tag a customer created over there as ours (Stripe: metadata, merged key by key)."""

    async def delete_customer(self, external_id: str) -> None:
        """Delete it; ExternalCustomerMissing if the system does not know it (or no longer lets it
        be deleted): only ``retrieve_customer`` tells which."""

    async def retrieve_customer(self, external_id: str) -> ExternalCustomer:
        """The customer as the system holds it now (``deleted`` set if it was deleted)."""

    async def list_customers(
        self, *, limit: int, cursor: str | None = None, email: str | None = None, created_since: datetime | None = None
    ) -> Page:
        """Customers, newest first, from the system's strongly consistent list (never a search
        index): ``email`` exactly, ``created_since`` inclusive."""

    async def created_customers(self, *, created_since: datetime, cursor: str | None = None) -> Page:
        """Customers as the system's own record of their creation shows them, deleted ones
        included (Stripe: ``customer.created`` events), newest first."""

    async def recent_changes(self, *, since: datetime, cursor: str | None = None) -> ChangePage:
        """Customer changes the system recorded at or after ``since``, newest first, from its own
        change log (Stripe: ``GET /v1/events``, 30 days of history) -- what webhooks should have
        delivered. Each is the same ``ExternalChange`` its webhook would be (same event id), so the
        inbox drops what was delivered both ways. An entry that cannot be read is left out."""


Integrations = Mapping[str, Integration]


@runtime_checkable
class WebhookSource(Protocol):
    """A system that tells of its changes by signed webhooks (Stripe; Salesforce sends none: its
    changes are polled). Only such systems have an endpoint at ``/api/v1/webhooks/{system}``."""

    system: str

    def parse_webhook(self, payload: bytes, headers: Mapping[str, str]) -> ExternalChange | None:
        """Verify and parse a webhook; ``None`` for event types we ignore; raises InvalidWebhook."""


WebhookSources = Mapping[str, WebhookSource]
