"""Stripe events, parsed strictly after their signature was verified.

Three outcomes, because Stripe retries anything but a 2xx for three days:
- not a Stripe event at all (not JSON, no id/type/created/data.object): ``InvalidWebhook`` (400);
- a well-formed event of a type we do not sync: ``None`` (200, ignored);
- a customer event whose object we refuse (a field of the wrong type, an absurd ``created``):
  ``RefusedWebhook`` (200, and the rejection is recorded) -- redelivering it cannot help.

An event listed by ``GET /v1/events`` is the same object as its webhook's body: ``parse_event_object``
reads it by the same rules into the same ``ExternalChange`` (same event id), so the inbox drops an
event that arrived both ways.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from adapters.stripe.objects import ObjectRefused, customer_from_api
from application.errors import InvalidWebhook, RefusedWebhook
from domain.customer import SYNCED_FIELDS
from domain.messages import ChangeKind, ExternalChange

KINDS = {"customer.created": ChangeKind.CREATED, "customer.updated": ChangeKind.UPDATED, "customer.deleted": ChangeKind.DELETED}
# Stripe launched in 2011; nothing it stamps can be older, and nothing sane is from the next century.
_EARLIEST, _LATEST = 1262304000, 4102444800  # 2010-01-01, 2100-01-01 (UTC)
_EVENT_ID_MAX = 255


class _EventData(msgspec.Struct):
    object: dict[str, Any]
    previous_attributes: Any = None


class _Event(msgspec.Struct):
    id: str
    type: str
    created: int
    data: _EventData
    request: Any = None  # {"id", "idempotency_key"}, or a bare id string on old API versions


def parse_event(payload: bytes, system: str) -> ExternalChange | None:
    """A webhook's body (its signature already verified)."""
    try:
        event = msgspec.json.decode(payload, type=_Event)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise InvalidWebhook(f"not a Stripe event: {exc}") from exc
    except UnicodeDecodeError:
        raise InvalidWebhook("body is not UTF-8") from None
    except RecursionError:  # msgspec: nested beyond its depth limit (no Stripe event nests that deep)
        raise InvalidWebhook("not a Stripe event: nested too deeply") from None
    return _change(event, system)


def parse_event_object(obj: Mapping[str, Any], system: str) -> ExternalChange | None:
    """An event as ``GET /v1/events`` lists it, as plain data (the SDK's ``to_dict()``)."""
    try:
        event = msgspec.convert(obj, _Event)  # strict, as JSON decoding is: no "1" for 1
    except msgspec.ValidationError as exc:
        raise InvalidWebhook(f"not a Stripe event: {exc}") from exc
    except RecursionError:
        raise InvalidWebhook("not a Stripe event: nested too deeply") from None
    return _change(event, system)


def _change(event: _Event, system: str) -> ExternalChange | None:
    if not event.id or len(event.id) > _EVENT_ID_MAX or not event.id.isprintable():
        raise InvalidWebhook("not a Stripe event: its id is empty, too long or unprintable")
    kind = KINDS.get(event.type)
    if kind is None:
        return None
    if not _EARLIEST <= event.created <= _LATEST:
        raise RefusedWebhook(event.id, f"created {event.created} is not a plausible time")
    try:
        customer = customer_from_api(event.data.object)
    except ObjectRefused as exc:
        raise RefusedWebhook(event.id, f"customer object refused: {exc}") from None
    previous = event.data.previous_attributes
    if previous is not None and not isinstance(previous, dict):
        raise RefusedWebhook(event.id, "previous_attributes is not an object")
    return ExternalChange(
        event_id=event.id,
        system=system,
        kind=kind,
        external_id=customer.external_id,
        occurred_at=datetime.fromtimestamp(event.created, UTC),
        # An object's own ``deleted`` flag is a claim; domain.safety decides what proves a deletion.
        customer=msgspec.structs.replace(customer, deleted=customer.deleted or kind is ChangeKind.DELETED),
        changed_fields=_changed_fields(kind, previous),
        request_key=_request_key(event.request),
        cause_known=isinstance(event.request, dict),
    )


def _changed_fields(kind: ChangeKind, previous: dict[str, Any] | None) -> frozenset[str] | None:
    if kind is ChangeKind.CREATED:
        return frozenset(SYNCED_FIELDS)
    if kind is ChangeKind.UPDATED and previous is not None:
        return frozenset(f for f in SYNCED_FIELDS if f in previous)
    return None


def _request_key(request: Any) -> str | None:
    key = request.get("idempotency_key") if isinstance(request, dict) else None
    return key if isinstance(key, str) and key else None
