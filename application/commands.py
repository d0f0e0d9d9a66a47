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
    # Optimistic concurrency (HTTP If-Match): the write proceeds only from one of these versions;
    # None: no precondition. Several, because If-Match may list several tags; none (empty), when
    # it named no version the customer can be at (a weak tag, a tag this API never issued).
    expected_versions: frozenset[int] | None = None


class PatchCustomer(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: int
    changes: dict[str, str | None]  # only the fields to change; None clears a field
    expected_versions: frozenset[int] | None = None


class DeleteCustomer(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: int
    expected_versions: frozenset[int] | None = None


class ListCustomers(msgspec.Struct, frozen=True, kw_only=True):
    limit: int = 50
    after_id: int | None = None
    email: str | None = None
