"""Commands: what a caller (HTTP, CLI, tests) asks the catalog to do."""

from __future__ import annotations

import msgspec


class CreateCustomer(msgspec.Struct, frozen=True):
    name: str | None = None
    email: str | None = None


class ReplaceCustomer(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: int
    name: str | None
    email: str | None
    expected_version: int | None = None  # optimistic concurrency (HTTP If-Match)


class PatchCustomer(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: int
    changes: dict[str, str | None]  # only the fields to change; None clears a field
    expected_version: int | None = None


class DeleteCustomer(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: int
    expected_version: int | None = None


class ListCustomers(msgspec.Struct, frozen=True, kw_only=True):
    limit: int = 50
    after_id: int | None = None
    email: str | None = None
