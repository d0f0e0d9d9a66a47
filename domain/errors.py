"""Errors the domain raises; the HTTP layer maps each to one problem+json response."""

from __future__ import annotations

from collections.abc import Collection

import msgspec


class DomainError(Exception):
    """Base class for every error raised by the domain and application layers."""


class FieldError(msgspec.Struct, frozen=True):
    field: str
    reason: str


class InvalidCustomer(DomainError):
    """One or more fields break the catalog's rules (which mirror Stripe's)."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))


class CustomerNotFound(DomainError):
    def __init__(self, customer_id: int) -> None:
        self.customer_id = customer_id
        super().__init__(f"customer {customer_id} does not exist")


class StaleVersion(DomainError):
    """The customer's current version is none of those the client's If-Match named."""

    def __init__(self, customer_id: int, expected: Collection[int], actual: int) -> None:
        self.customer_id, self.expected, self.actual = customer_id, frozenset(expected), actual
        named = (
            f"not {' or '.join(map(str, sorted(self.expected)))}" if self.expected else "and no version it could be at was given"
        )
        super().__init__(f"customer {customer_id} is at version {actual}, {named}")


class ConcurrentUpdate(DomainError):
    """Someone else saved this customer between our read and our write; retry from a fresh read."""

    def __init__(self, customer_id: int) -> None:
        self.customer_id = customer_id
        super().__init__(f"customer {customer_id} was changed concurrently; retry")


class DeadLetterNotFound(DomainError):
    """A replay named dead letters that do not exist or were already replayed; nothing was replayed."""

    def __init__(self, unknown: list[int], replayed: list[int]) -> None:
        self.unknown, self.replayed = tuple(unknown), tuple(replayed)
        parts = []
        if unknown:
            parts.append(f"no dead letter with id {_ids(unknown)}")
        if replayed:
            parts.append(f"dead letter {_ids(replayed)} already replayed")
        super().__init__("; ".join(parts) + " (nothing was replayed)")


def _ids(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids)
