"""Stripe customer objects and our metadata on them, read strictly.

A customer object comes from the API or from a signed event; either way a field of the wrong type
is refused (``ObjectRefused``) rather than read as "not set", which would clear it in the catalog.
What the metadata says about us is a claim (``domain.ownership``): an unusable claim (an
``internal_id`` such as ``"²"`` or ``"1e3"``) is read as no claim, never as an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from domain.customer import CustomerData
from domain.messages import ExternalCustomer
from domain.ownership import Claim, OwnershipTag

INTERNAL_ID_KEY = "internal_id"
INSTALLATION_KEY = "custsync_installation"
CREATE_KEY = "custsync_create"

_CATALOG_ID = re.compile(r"[1-9][0-9]{0,18}")  # ASCII digits only: str.isdigit() accepts "²"
_BIGINT_MAX = 2**63 - 1
_ID_MAX = 255


class ObjectRefused(ValueError):
    """A customer object we will not read (a field of the wrong type, no id)."""


def tag_metadata(tag: OwnershipTag) -> dict[str, str]:
    metadata = {INTERNAL_ID_KEY: str(tag.internal_id), INSTALLATION_KEY: tag.installation}
    if tag.create_key is not None:
        metadata[CREATE_KEY] = tag.create_key
    return metadata


def customer_from_api(obj: Mapping[str, Any]) -> ExternalCustomer:
    """A customer object as Stripe returns it (``{"id", "object", "deleted": true}`` once deleted)."""
    external_id = obj.get("id")
    if not isinstance(external_id, str) or not external_id or len(external_id) > _ID_MAX or not external_id.isprintable():
        raise ObjectRefused("the customer has no usable id")
    if obj.get("object", "customer") != "customer":
        raise ObjectRefused(f"not a customer object: {obj.get('object')!r}")
    deleted = obj.get("deleted", False)
    if not isinstance(deleted, bool):
        raise ObjectRefused("deleted is not a boolean")
    metadata = obj.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ObjectRefused("metadata is not an object of strings")
    return ExternalCustomer(
        external_id=external_id,
        data=CustomerData(name=_text(obj, "name"), email=_text(obj, "email")),
        claim=read_claim(metadata),
        deleted=deleted,
    )


def read_claim(metadata: Mapping[str, str]) -> Claim:
    raw_id = metadata.get(INTERNAL_ID_KEY)
    internal_id = int(raw_id) if raw_id is not None and _CATALOG_ID.fullmatch(raw_id) and int(raw_id) <= _BIGINT_MAX else None
    return Claim(
        internal_id=internal_id, installation=_token(metadata.get(INSTALLATION_KEY)), create_key=_token(metadata.get(CREATE_KEY))
    )


def _token(value: str | None) -> str | None:
    """A tag we wrote is short and printable; anything else is no tag of ours (and must not reach
    a history note: PostgreSQL text cannot hold NUL)."""
    return value if value and len(value) <= _ID_MAX and value.isprintable() else None


def _text(obj: Mapping[str, Any], field: str) -> str | None:
    value = obj.get(field)
    if value is not None and not isinstance(value, str):
        raise ObjectRefused(f"{field} is not a string")
    # PostgreSQL text cannot hold NUL; Stripe would not show it anyway.
    value = value.replace("\x00", "") if value else None
    return value or None
