"""``StripeIntegration``: the integration port over a Stripe customers service.

The service is the SDK's ``StripeClient(...).v1.customers`` in production, or
``adapters.memory.stripe.InMemoryStripe`` (same surface, same error classes) in tests and dev mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
import stripe

from application.errors import (
    ExternalCustomerMissing,
    IntegrationAuthError,
    IntegrationError,
    InvalidWebhook,
    PermanentIntegrationError,
    RetryableIntegrationError,
    WebhookNotConfigured,
)
from application.ports import Page
from domain.customer import CustomerData
from domain.messages import ChangeKind, ExternalChange, ExternalCustomer

INTERNAL_ID_KEY = "internal_id"
_KINDS = {"customer.created": ChangeKind.CREATED, "customer.updated": ChangeKind.UPDATED, "customer.deleted": ChangeKind.DELETED}


class CustomersService(Protocol):
    async def create_async(self, params: Any = None, options: Any = None) -> Any: ...
    async def update_async(self, customer: str, params: Any = None, options: Any = None) -> Any: ...
    async def delete_async(self, customer: str, params: Any = None, options: Any = None) -> Any: ...
    async def retrieve_async(self, customer: str, params: Any = None, options: Any = None) -> Any: ...
    async def list_async(self, params: Any = None, options: Any = None) -> Any: ...


class _EventData(msgspec.Struct):
    object: dict[str, Any]


class _Event(msgspec.Struct):
    id: str
    type: str
    created: int
    data: _EventData


class StripeIntegration:
    def __init__(
        self, customers: CustomersService, webhook_secrets: Sequence[str], *, tolerance: int = 300, system: str = "stripe"
    ) -> None:
        self.system = system
        self._customers = customers
        self._secrets = [s for s in webhook_secrets if s]
        self._tolerance = tolerance

    async def create_customer(self, data: CustomerData, *, internal_id: int, idempotency_key: str) -> ExternalCustomer:
        params: dict[str, Any] = {k: v for k, v in (("name", data.name), ("email", data.email)) if v is not None}
        params["metadata"] = {INTERNAL_ID_KEY: str(internal_id)}
        return await self._call(self._customers.create_async, params=params, options={"idempotency_key": idempotency_key})

    async def update_customer(self, external_id: str, changes: Mapping[str, str | None]) -> ExternalCustomer:
        # Stripe unsets a field given as "", and leaves out what is not sent.
        params = {field: "" if value is None else value for field, value in changes.items()}
        return await self._call(self._customers.update_async, external_id, params=params)

    async def link_customer(self, external_id: str, internal_id: int) -> None:
        # Metadata is merged key by key: the user's other keys stay as they are.
        await self._call(self._customers.update_async, external_id, params={"metadata": {INTERNAL_ID_KEY: str(internal_id)}})

    async def delete_customer(self, external_id: str) -> None:
        await self._call(self._customers.delete_async, external_id)

    async def retrieve_customer(self, external_id: str) -> ExternalCustomer | None:
        try:
            return await self._call(self._customers.retrieve_async, external_id)
        except ExternalCustomerMissing:
            return None

    async def list_customers(self, *, limit: int, cursor: str | None = None) -> Page:
        params: dict[str, Any] = {"limit": max(1, min(limit, 100))}
        if cursor:
            params["starting_after"] = cursor
        try:
            result = await self._customers.list_async(params=params)
        except stripe.StripeError as exc:
            raise _classify(exc) from exc
        result = _as_dict(result)
        customers = [to_external(obj) for obj in result["data"]]
        return Page(customers, customers[-1].external_id if result["has_more"] and customers else None)

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> ExternalCustomer:
        try:
            return to_external(_as_dict(await method(*args, **kwargs)))
        except stripe.StripeError as exc:
            raise _classify(exc) from exc

    def parse_webhook(self, payload: bytes, headers: Mapping[str, str]) -> ExternalChange | None:
        self._verify(payload, headers.get("stripe-signature"))
        try:
            event = msgspec.json.decode(payload, type=_Event)
        except msgspec.DecodeError as exc:
            raise InvalidWebhook(f"not a Stripe event: {exc}") from exc
        kind = _KINDS.get(event.type)
        if kind is None or event.data.object.get("object") != "customer" or not isinstance(event.data.object.get("id"), str):
            return None
        customer = to_external(event.data.object)
        return ExternalChange(
            event_id=event.id, system=self.system, kind=kind, external_id=customer.external_id,
            occurred_at=datetime.fromtimestamp(event.created, UTC),
            customer=msgspec.structs.replace(customer, deleted=customer.deleted or kind is ChangeKind.DELETED),
        )

    def _verify(self, payload: bytes, header: str | None) -> None:
        if not header:
            raise InvalidWebhook("missing Stripe-Signature header")
        if not self._secrets:
            raise WebhookNotConfigured("no webhook secret is configured (STRIPE_WEBHOOK_SECRET)")
        reason = "signature does not match"
        for secret in self._secrets:  # several during a rotation: the old and the new
            try:
                stripe.WebhookSignature.verify_header(payload, header, secret, self._tolerance)
                return
            except stripe.SignatureVerificationError as exc:
                reason = str(exc.user_message or exc)
            except UnicodeDecodeError:
                raise InvalidWebhook("body is not UTF-8") from None
        raise InvalidWebhook(reason)


def _as_dict(obj: Any) -> dict[str, Any]:
    # The SDK (v16) returns StripeObjects, which are not dicts; the in-memory stand-in returns dicts.
    return obj.to_dict() if hasattr(obj, "to_dict") else obj


def to_external(obj: Mapping[str, Any]) -> ExternalCustomer:
    metadata = obj.get("metadata") or {}
    raw_id = metadata.get(INTERNAL_ID_KEY)
    return ExternalCustomer(
        external_id=obj["id"],
        data=CustomerData(name=_text(obj.get("name")), email=_text(obj.get("email"))),
        internal_id=int(raw_id) if isinstance(raw_id, str) and raw_id.isdigit() else None,
        deleted=bool(obj.get("deleted", False)),
    )


def _text(value: Any) -> str | None:
    # PostgreSQL text cannot hold NUL; Stripe would not show it anyway.
    value = value.replace("\x00", "") if isinstance(value, str) else None
    return value or None


def _classify(exc: stripe.StripeError) -> IntegrationError:
    message = f"stripe: {exc.user_message or exc}"
    status = exc.http_status or 0
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    should_retry = headers.get("stripe-should-retry")
    retry_after = _retry_after(headers.get("retry-after"))
    if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        return IntegrationAuthError(message)
    if isinstance(exc, stripe.InvalidRequestError) and status == 404:
        return ExternalCustomerMissing(message)
    if should_retry == "false":
        return PermanentIntegrationError(message)
    if should_retry == "true" or isinstance(exc, (stripe.RateLimitError, stripe.APIConnectionError)) or status == 429 or status >= 500:
        return RetryableIntegrationError(message, retry_after=retry_after)
    if isinstance(exc, stripe.APIError) and not status:
        return RetryableIntegrationError(message, retry_after=retry_after)
    return PermanentIntegrationError(message)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
