"""A Stripe-like customer directory in memory.

It has the shape of the SDK's ``StripeClient().v1.customers`` service (``create_async``,
``update_async``, ``delete_async``, ``retrieve_async``, ``list_async``) and raises the SDK's own
error classes, so the Stripe adapter runs unchanged on top of it. It behaves like Stripe where sync
depends on it: ``cus_`` ids it chooses, idempotency keys, metadata merged key by key, permanent
deletes that stay retrievable as ``deleted: true``, newest-first cursor lists, and one event per
change (``customer.created`` / ``.updated`` / ``.deleted``) with whole-second ``created`` stamps.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import random
import secrets
from collections.abc import Mapping
from typing import Any

import stripe

from application.ports import Clock
from adapters.clock import SystemClock

_FIELDS = ("name", "email")


class InMemoryStripe:
    def __init__(self, clock: Clock | None = None, ids: random.Random | None = None) -> None:
        self._clock = clock or SystemClock()
        # Where ids come from: a seeded Random makes runs reproducible (property tests need that).
        self.ids = ids or random.Random(secrets.randbits(64))
        self.customers: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.events: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str | None]] = []  # (method, idempotency key) for every API call
        self.new_events = asyncio.Event()
        self._idempotent: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._seq = itertools.count(1)

    # -- the SDK service surface ---------------------------------------------------------------
    async def create_async(self, params: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        params = dict(params or {})
        key = (options or {}).get("idempotency_key")
        self.calls.append(("create", key))
        if key is not None and key in self._idempotent:
            first_params, response = self._idempotent[key]
            if first_params != params:
                raise stripe.IdempotencyError("Keys for idempotent requests can only be used with the same parameters", http_status=400)
            return copy.deepcopy(response)
        _check(params)
        customer = {
            "id": f"cus_{self.ids.getrandbits(56):014x}", "object": "customer", "created": self._timestamp(),
            "name": params.get("name") or None, "email": params.get("email") or None,
            "metadata": {k: str(v) for k, v in (params.get("metadata") or {}).items() if v != ""},
        }
        self.customers[customer["id"]] = customer
        self._emit("customer.created", customer, key)
        if key is not None:
            self._idempotent[key] = (params, copy.deepcopy(customer))
        return copy.deepcopy(customer)

    async def update_async(self, customer: str, params: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        params = dict(params or {})
        self.calls.append(("update", (options or {}).get("idempotency_key")))
        current = self._live(customer)
        _check(params)
        before = copy.deepcopy(current)
        for field in _FIELDS:
            if field in params:
                current[field] = params[field] or None  # "" unsets, as in Stripe
        for k, v in (params.get("metadata") or {}).items():
            if v == "":
                current["metadata"].pop(k, None)
            else:
                current["metadata"][k] = str(v)
        previous = {k: before[k] for k in ("name", "email", "metadata") if before[k] != current[k]}
        if previous:
            self._emit("customer.updated", current, (options or {}).get("idempotency_key"), previous)
        return copy.deepcopy(current)

    async def delete_async(self, customer: str, params: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append(("delete", (options or {}).get("idempotency_key")))
        current = self._live(customer)
        del self.customers[customer]
        self.deleted.add(customer)
        self._emit("customer.deleted", current, None)
        return {"id": customer, "object": "customer", "deleted": True}

    async def retrieve_async(self, customer: str, params: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append(("retrieve", None))
        if customer in self.deleted:
            return {"id": customer, "object": "customer", "deleted": True}
        return copy.deepcopy(self._live(customer))

    async def list_async(self, params: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        params = dict(params or {})
        self.calls.append(("list", None))
        limit = int(params.get("limit", 10))
        if not 1 <= limit <= 100:
            raise _invalid("limit", "Invalid integer: must be between 1 and 100")
        newest_first = list(reversed(self.customers.values()))
        after = params.get("starting_after")
        if after is not None:
            ids = [c["id"] for c in newest_first]
            if after not in ids:
                raise _missing(after)
            newest_first = newest_first[ids.index(after) + 1:]
        page = newest_first[:limit]
        return {"object": "list", "data": copy.deepcopy(page), "has_more": len(newest_first) > limit, "url": "/v1/customers"}

    # -- test and dev helpers -------------------------------------------------------------------
    def signed_event(self, event: Mapping[str, Any], secret: str, timestamp: int | None = None) -> tuple[bytes, str]:
        """The event as Stripe would POST it: raw body and ``Stripe-Signature`` header."""
        payload = json.dumps(event, separators=(",", ":"))
        header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)
        return payload.encode(), header

    def _live(self, customer_id: str) -> dict[str, Any]:
        if customer_id not in self.customers:
            raise _missing(customer_id)
        return self.customers[customer_id]

    def _timestamp(self) -> int:
        return int(self._clock.now().timestamp())

    def _emit(self, kind: str, customer: Mapping[str, Any], key: str | None, previous: dict[str, Any] | None = None) -> None:
        data: dict[str, Any] = {"object": copy.deepcopy(dict(customer))}
        if previous is not None:
            data["previous_attributes"] = previous
        self.events.append({
            "id": f"evt_{next(self._seq):06d}{self.ids.getrandbits(48):012x}", "object": "event", "type": kind,
            "created": self._timestamp(), "livemode": False, "data": data,
            "request": {"id": f"req_{self.ids.getrandbits(56):014x}", "idempotency_key": key},
        })
        self.new_events.set()


def _check(params: Mapping[str, Any]) -> None:
    email = params.get("email")
    if email and ("@" not in email or len(email) > 512):
        raise _invalid("email", f"Invalid email address: {email}")
    name = params.get("name")
    if name and len(name) > 256:
        raise _invalid("name", "Invalid string: must be at most 256 characters")
    metadata = params.get("metadata") or {}
    if len(metadata) > 50 or any(len(k) > 40 or len(str(v)) > 500 for k, v in metadata.items()):
        raise _invalid("metadata", "Invalid metadata: at most 50 keys of up to 40 characters, values up to 500")


def _invalid(param: str, message: str) -> stripe.InvalidRequestError:
    return stripe.InvalidRequestError(message, param, code="parameter_invalid", http_status=400)


def _missing(customer_id: str) -> stripe.InvalidRequestError:
    return stripe.InvalidRequestError(f"No such customer: '{customer_id}'", "id", code="resource_missing", http_status=404)
