"""``StripeIntegration``: the integration port over Stripe's customers (and account) services.

The services are the SDK's ``StripeClient(...).v1.customers`` / ``.v1.accounts`` in production, or
``adapters.memory.stripe.InMemoryStripe`` (same surface, same error classes) in tests and dev mode.
Webhooks are parsed strictly (``adapters.stripe.events``); customer objects from the API too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, cast

import stripe

from adapters.stripe.events import KINDS, parse_event, parse_event_object
from adapters.stripe.limiter import polling
from adapters.stripe.objects import ObjectRefused, customer_from_api, tag_metadata
from application.errors import (
    ExternalCustomerMissing,
    IdempotentReplayFailure,
    IntegrationAuthError,
    IntegrationError,
    InvalidWebhook,
    PermanentIntegrationError,
    RefusedWebhook,
    RequestRefused,
    RetryableIntegrationError,
    WebhookNotConfigured,
)
from application.ports import ChangePage, Page
from domain.binding import ExternalAccount
from domain.customer import CustomerData
from domain.errors import FieldError
from domain.messages import ExternalChange, ExternalCustomer
from domain.ownership import OwnershipTag


class CustomersService(Protocol):
    async def create_async(self, params: Any = None, options: Any = None) -> Any: ...
    async def update_async(self, customer: str, params: Any = None, options: Any = None) -> Any: ...
    async def delete_async(self, customer: str, params: Any = None, options: Any = None) -> Any: ...
    async def retrieve_async(self, customer: str, params: Any = None, options: Any = None) -> Any: ...
    async def list_async(self, params: Any = None, options: Any = None) -> Any: ...


class AccountsService(Protocol):
    async def retrieve_current_async(self, params: Any = None, options: Any = None) -> Any: ...


class EventsService(Protocol):
    async def list_async(self, params: Any = None, options: Any = None) -> Any: ...


class RawRequests(Protocol):
    """``StripeClient.raw_request_async``: the same request (auth, API version, error classes),
    answered as parsed JSON instead of StripeObjects."""

    async def raw_request_async(self, method_: str, url_: str, **params: Any) -> Any: ...


def key_mode(secret_key: str) -> str:
    """Stripe tells the mode by the key's prefix: ``sk_test_``/``rk_test_`` or ``sk_live_``/``rk_live_``."""
    for mode in ("test", "live"):
        if secret_key.startswith((f"sk_{mode}_", f"rk_{mode}_")):
            return mode
    return "unknown"


class StripeIntegration:
    def __init__(
        self,
        customers: CustomersService,
        webhook_secrets: Sequence[str],
        *,
        accounts: AccountsService | None = None,
        events: EventsService | None = None,
        raw: RawRequests | None = None,
        mode: str = "test",
        tolerance: int = 300,
        system: str = "stripe",
    ) -> None:
        self.system = system
        self._customers = customers
        # The in-memory stand-in serves every surface.
        self._accounts: AccountsService = accounts if accounts is not None else cast(AccountsService, customers)
        self._events = events if events is not None else getattr(customers, "event_api", None)
        # Full lists (reconcile) read pages as plain JSON: building StripeObjects for each page
        # costs more CPU than the page's share of the rate budget (bench/reconcile).
        self._raw = raw
        self._mode = mode
        self._secrets = [s for s in webhook_secrets if s]
        self._tolerance = tolerance

    async def account(self) -> ExternalAccount:
        result = _as_dict(await self._api(self._accounts.retrieve_current_async))
        account_id = result.get("id")
        if not isinstance(account_id, str) or not account_id:
            raise PermanentIntegrationError("stripe: GET /v1/account answered without an account id")
        return ExternalAccount(account_id, self._mode)

    async def create_customer(self, data: CustomerData, *, tag: OwnershipTag, idempotency_key: str) -> ExternalCustomer:
        params: dict[str, Any] = {k: v for k, v in (("name", data.name), ("email", data.email)) if v is not None}
        params["metadata"] = tag_metadata(tag)
        return await self._customer(self._customers.create_async, params=params, options={"idempotency_key": idempotency_key})

    def field_errors(self, changes: Mapping[str, str | None]) -> list[FieldError]:
        return []  # the catalog's own limits are Stripe's (domain.customer)

    async def update_customer(
        self, external_id: str, changes: Mapping[str, str | None], *, idempotency_key: str | None = None
    ) -> ExternalCustomer:
        # Stripe unsets a field given as "", and leaves out what is not sent.
        params = {field: "" if value is None else value for field, value in changes.items()}
        return await self._customer(self._customers.update_async, external_id, params=params, options=_options(idempotency_key))

    async def link_customer(self, external_id: str, tag: OwnershipTag, *, idempotency_key: str | None = None) -> None:
        # Metadata is merged key by key: the user's other keys stay as they are.
        await self._customer(
            self._customers.update_async, external_id, params={"metadata": tag_metadata(tag)}, options=_options(idempotency_key)
        )

    async def delete_customer(self, external_id: str) -> None:
        await self._api(self._customers.delete_async, external_id)

    async def retrieve_customer(self, external_id: str) -> ExternalCustomer:
        return await self._customer(self._customers.retrieve_async, external_id)

    async def list_customers(
        self, *, limit: int, cursor: str | None = None, email: str | None = None, created_since: datetime | None = None
    ) -> Page:
        params: dict[str, Any] = {"limit": max(1, min(limit, 100))}
        if cursor:
            params["starting_after"] = cursor
        if email is not None:
            params["email"] = email
        if created_since is not None:
            params["created"] = {"gte": int(created_since.timestamp())}
        if self._raw is not None:
            result = _as_dict(
                getattr(await self._api(self._raw.raw_request_async, "get", "/v1/customers", **params), "data", None)
            )
        else:
            result = _as_dict(await self._api(self._customers.list_async, params=params))
        customers = []
        for obj in result.get("data") or []:
            try:
                customers.append(customer_from_api(_as_dict(obj)))
            except ObjectRefused:
                continue  # a record we cannot read is no customer of ours to find
        raw_last = (result.get("data") or [{}])[-1]
        last_id = _as_dict(raw_last).get("id") if raw_last else None
        return Page(customers, last_id if result.get("has_more") and isinstance(last_id, str) else None)

    async def created_customers(self, *, created_since: datetime, cursor: str | None = None) -> Page:
        """Customers as their ``customer.created`` events showed them (deleted ones included),
        newest first, from ``GET /v1/events`` (30 days of history)."""
        if self._events is None:
            raise PermanentIntegrationError("stripe: no events service configured")
        params: dict[str, Any] = {"type": "customer.created", "created": {"gte": int(created_since.timestamp())}, "limit": 100}
        if cursor:
            params["starting_after"] = cursor
        result = _as_dict(await self._api(self._events.list_async, params=params))
        customers = []
        for event in result.get("data") or []:
            obj = (_as_dict(event).get("data") or {}).get("object")
            try:
                customers.append(customer_from_api(_as_dict(obj)))
            except ObjectRefused:
                continue
        last = (result.get("data") or [None])[-1]
        last_id = _as_dict(last).get("id") if last is not None else None
        return Page(customers, last_id if result.get("has_more") and isinstance(last_id, str) else None)

    def parse_webhook(self, payload: bytes, headers: Mapping[str, str]) -> ExternalChange | None:
        self._verify(payload, headers.get("stripe-signature"))
        return parse_event(payload, self.system)

    async def recent_changes(self, *, since: datetime, cursor: str | None = None) -> ChangePage:
        """Customer events from ``GET /v1/events`` (the last 30 days at most), newest first."""
        if self._events is None:
            raise PermanentIntegrationError("stripe: no events service configured")
        params: dict[str, Any] = {"types": list(KINDS), "created": {"gte": int(since.timestamp())}, "limit": 100}
        if cursor:
            params["starting_after"] = cursor
        with polling():
            result = _as_dict(await self._api(self._events.list_async, params=params))
        events = [_as_dict(event) for event in result.get("data") or []]
        changes = []
        for event in events:
            try:
                change = parse_event_object(event, self.system)
            except (InvalidWebhook, RefusedWebhook):
                continue  # unreadable: no change to catch up on (its webhook is refused too)
            if change is not None:
                changes.append(change)
        last_id = events[-1].get("id") if events else None
        return ChangePage(changes, last_id if result.get("has_more") and isinstance(last_id, str) else None)

    async def _customer(self, method: Any, *args: Any, **kwargs: Any) -> ExternalCustomer:
        obj = _as_dict(await self._api(method, *args, **kwargs))
        try:
            return customer_from_api(obj)
        except ObjectRefused as exc:
            raise PermanentIntegrationError(f"stripe: unreadable customer object: {exc}") from exc

    async def _api(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _classify(exc) from exc

    def _verify(self, payload: bytes, header: str | None) -> None:
        if not header:
            raise InvalidWebhook("missing Stripe-Signature header", reason="signature")
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
        raise InvalidWebhook(reason, reason="signature")


def _options(idempotency_key: str | None) -> dict[str, str] | None:
    return {"idempotency_key": idempotency_key} if idempotency_key else None


def _as_dict(obj: Any) -> dict[str, Any]:
    # The SDK (v16) returns StripeObjects, which are not dicts; the in-memory stand-in returns dicts.
    obj = obj.to_dict() if hasattr(obj, "to_dict") else obj
    return obj if isinstance(obj, dict) else {}


def _classify(exc: stripe.StripeError) -> IntegrationError:
    message = f"stripe: {exc.user_message or exc}"
    status = exc.http_status or 0
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    should_retry = headers.get("stripe-should-retry")
    retry_after = _retry_after(headers.get("retry-after"))
    if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        return IntegrationAuthError(message)
    if headers.get("idempotent-replayed") == "true" and (status >= 500 or status == 0 or should_retry == "true"):
        # A failure Stripe saved under our key: every retry with that key gets it again.
        return IdempotentReplayFailure(f"{message} (a failure replayed for our idempotency key)", retry_after=retry_after)
    if isinstance(exc, stripe.InvalidRequestError) and status == 404:
        return ExternalCustomerMissing(message)
    if should_retry == "false":
        return PermanentIntegrationError(message)
    # 409: a request under the same idempotency key is still running (the SDK retries these too).
    retryable_status = status in (409, 429) or status >= 500
    if should_retry == "true" or isinstance(exc, (stripe.RateLimitError, stripe.APIConnectionError)) or retryable_status:
        return RetryableIntegrationError(message, retry_after=retry_after)
    if isinstance(exc, stripe.InvalidRequestError) and not isinstance(exc, stripe.IdempotencyError) and status == 400:
        return RequestRefused(message)  # the data itself was refused: nothing was done
    if isinstance(exc, stripe.APIError) and not status:
        return RetryableIntegrationError(message, retry_after=retry_after)
    return PermanentIntegrationError(message)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
