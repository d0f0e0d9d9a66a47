"""Customers and the rules their fields obey.

The limits mirror Stripe's (name <= 256, email <= 512 characters) so that nothing the catalog
accepts is later refused by Stripe; an API write is checked here before anything is stored.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

import msgspec

from domain.errors import FieldError, InvalidCustomer

NAME_MAX_LENGTH = 256
EMAIL_MAX_LENGTH = 512
SYNCED_FIELDS = ("name", "email")

# Pragmatic syntax check in the spirit of Stripe's own: one @, a dot-atom-ish local part, and a
# domain of dot-separated labels. Deliverability is not our business; obviously broken input is.
_EMAIL = re.compile(
    r"^(?!\.)(?!.*\.\.)[^\s@\"(),:;<>\[\]\\]{1,64}(?<!\.)"
    r"@(?=.{1,253}$)(?:(?!-)[^\s@\"(),:;<>\[\]\\.]{1,63}(?<!-)\.)+[^\s@\"(),:;<>\[\]\\.\d-]{2,63}$"
)


class CustomerData(msgspec.Struct, frozen=True):
    """The fields that are synced with external systems. ``None`` means "not set"."""

    name: str | None = None
    email: str | None = None

    def changed_fields(self, other: CustomerData) -> frozenset[str]:
        return frozenset(f for f in SYNCED_FIELDS if getattr(self, f) != getattr(other, f))

    def merged(self, other: CustomerData, fields: frozenset[str]) -> CustomerData:
        """This data with ``fields`` taken from ``other``."""
        return msgspec.structs.replace(self, **{f: getattr(other, f) for f in fields})


class FieldTimes(msgspec.Struct, frozen=True):
    """When each synced field got its current value (``latest_wins`` compares these, field by
    field, with the external system's change times). ``None``: unknown (rows from before this
    was kept), read as the customer's ``updated_at``."""

    name: datetime | None = None
    email: datetime | None = None

    def with_fields(self, fields: frozenset[str] | set[str], at: datetime) -> FieldTimes:
        return msgspec.structs.replace(self, **dict.fromkeys(fields, at)) if fields else self


class Customer(msgspec.Struct, frozen=True, kw_only=True):
    """A catalog customer. A deleted one stays as a tombstone (data cleared) so that late or
    duplicated external events can never bring it back."""

    id: int
    data: CustomerData
    version: int
    created_at: datetime
    updated_at: datetime
    deleted: bool = False
    field_times: FieldTimes = FieldTimes()

    def changed_at(self, field: str) -> datetime:
        return getattr(self.field_times, field) or self.updated_at

    @property
    def name(self) -> str | None:
        return self.data.name

    @property
    def email(self) -> str | None:
        return self.data.email

    def revised(self, data: CustomerData, at: datetime, field_times: dict[str, datetime] | None = None) -> Customer:
        """The customer with new data; the version moves only when something changed. Each changed
        field is stamped ``at``, or with its time in ``field_times`` (a value adopted from an
        external system keeps the time it changed there)."""
        if data == self.data:
            return self
        changed = data.changed_fields(self.data)
        times = self.field_times.with_fields(changed, at)
        if field_times:
            times = msgspec.structs.replace(times, **{f: t for f, t in field_times.items() if f in changed})
        return msgspec.structs.replace(self, data=data, version=self.version + 1, updated_at=at, field_times=times)

    def tombstone(self, at: datetime) -> Customer:
        return msgspec.structs.replace(self, data=CustomerData(), deleted=True, version=self.version + 1, updated_at=at)


def validated(name: str | None, email: str | None) -> CustomerData:
    """Trim and check client input; raises InvalidCustomer naming every offending field."""
    return validated_changes(CustomerData(), {"name": name, "email": email})


def validated_changes(current: CustomerData, changes: dict[str, str | None]) -> CustomerData:
    """``current`` with ``changes`` applied, each changed field trimmed and checked.

    Untouched fields are not re-checked: they may hold what an external system accepted.
    """
    errors: list[FieldError] = []
    clean = {field: _check_text(field, value, _LIMITS[field], errors) for field, value in changes.items()}
    email = clean.get("email")
    if email is not None and not _EMAIL.match(email):
        errors.append(FieldError("email", "is not a valid email address"))
    if errors:
        raise InvalidCustomer(errors)
    return msgspec.structs.replace(current, **clean)


_LIMITS = {"name": NAME_MAX_LENGTH, "email": EMAIL_MAX_LENGTH}


def _check_text(field: str, value: str | None, limit: int, errors: list[FieldError]) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        errors.append(FieldError(field, "must not be blank; send null to clear it"))
    elif len(value) > limit:
        errors.append(FieldError(field, f"must be at most {limit} characters (got {len(value)})"))
    elif any(unicodedata.category(ch) == "Cc" for ch in value):
        errors.append(FieldError(field, "must not contain control characters"))
    else:
        return value
    return None
