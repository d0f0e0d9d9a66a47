"""A Stripe-like customer directory in memory: one Stripe account.

It has the shape of the SDK's ``StripeClient().v1.customers`` service (``create_async``,
``update_async``, ``delete_async``, ``retrieve_async``, ``list_async``) and of
``v1.accounts.retrieve_current_async``, and raises the SDK's own error classes, so the Stripe
adapter runs unchanged on top of it. It behaves like Stripe where sync depends on it -- including
where Stripe is *not* kind (``../shared/STRIPE.md``, "Behaviours a faithful test server must
model"):

- ids it chooses (``cus_``), one account id (``acct_``) and mode per instance;
- idempotency keys: the first result is saved once execution started -- **500s included** -- and
  replayed (``Idempotent-Replayed: true``) to every retry with that key for 24 hours; validation
  failures (400) and 429s are not saved; the same key with other parameters is refused;
- deleted customers stay retrievable as ``{"id", "object", "deleted": true}``; updating or
  deleting one answers 404, and so does any id this account never had;
- metadata merged key by key; newest-first cursor lists filtered by exact ``email`` and ``created``;
- one event per change (``customer.created`` / ``.updated`` / ``.deleted``) with whole-second
  ``created`` stamps, ``previous_attributes`` and ``request.idempotency_key``; ``GET /v1/events``
  lists only those of the last 30 days (on the injected clock), as Stripe keeps no more.

Faults are injected with ``fail_next``: a call answered 500 (or 429) before or after it took effect.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import random
import secrets
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import msgspec
import stripe

from adapters.clock import SystemClock
from application.ports import Clock

_FIELDS = ("name", "email")
KEY_LIFETIME = timedelta(hours=24)
EVENT_RETENTION = timedelta(days=30)


class Fault(msgspec.Struct, frozen=True):
    status: int = 500
    executed: bool = False  # the change happened before the failure was answered


class InMemoryStripe:
    def __init__(
        self,
        clock: Clock | None = None,
        ids: random.Random | None = None,
        *,
        account_id: str | None = None,
        livemode: bool = False,
    ) -> None:
        self._clock = clock or SystemClock()
        # Where ids come from: a seeded Random makes runs reproducible (property tests need that).
        self.ids = ids or random.Random(secrets.randbits(64))
        self.account_id = account_id or f"acct_{self.ids.getrandbits(64):016x}"
        self.livemode = livemode
        self.customers: dict[str, dict[str, Any]] = {}
        self._created: list[str] = []  # every id in creation order (deleted ones too): the list's index
        self._position: dict[str, int] = {}
        self.deleted: set[str] = set()
        self.events: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str | None]] = []  # (method, idempotency key) for every API call
        self.new_events = asyncio.Event()
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.refusals: list[Callable[[Mapping[str, Any]], bool]] = []  # params -> refuse as invalid?
        # key -> (method, params, response or error, saved at)
        self._idempotent: dict[str, tuple[str, dict[str, Any], Any, Any]] = {}
        self._seq = itertools.count(1)

    def refuse(self, when: Callable[[Mapping[str, Any]], bool]) -> None:
        """Refuse, as invalid (400), every create or update whose parameters match ``when``."""
        self.refusals.append(when)

    def fail_next(self, method: str, status: int = 500, *, executed: bool = False, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` (``create``, ``update``, ...) with ``status``."""
        self.faults[method].extend(Fault(status, executed) for _ in range(times))

    # -- the SDK service surface ---------------------------------------------------------------
    @property
    def event_api(self) -> _Events:
        """The SDK's ``v1.events`` surface (``list_async``) over this account's events."""
        return _Events(self)

    async def retrieve_current_async(self, params: Any = None, options: Any = None) -> dict[str, Any]:
        self.calls.append(("account", None))
        return {"id": self.account_id, "object": "account"}

    async def create_async(
        self, params: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        params = dict(params or {})
        key = (options or {}).get("idempotency_key")
        self.calls.append(("create", key))
        return self._idempotently("create", key, params, lambda: self._create(params, key))

    async def update_async(
        self, customer: str, params: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        params = dict(params or {})
        key = (options or {}).get("idempotency_key")
        self.calls.append(("update", key))
        return self._idempotently("update", key, {"id": customer, **params}, lambda: self._update(customer, params, key))

    async def delete_async(
        self, customer: str, params: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        self.calls.append(("delete", (options or {}).get("idempotency_key")))
        return self._faulty("delete", lambda: self._delete(customer))

    async def retrieve_async(
        self, customer: str, params: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        self.calls.append(("retrieve", None))
        return self._faulty("retrieve", lambda: self._retrieve(customer))

    async def list_async(
        self, params: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        params = dict(params or {})
        self.calls.append(("list", None))
        return self._faulty("list", lambda: self._list(params))

    # -- what each call does ---------------------------------------------------------------------
    def _create(self, params: dict[str, Any], key: str | None) -> dict[str, Any]:
        self._check(params)
        customer = {
            "id": f"cus_{self.ids.getrandbits(56):014x}",
            "object": "customer",
            "created": self._timestamp(),
            "livemode": self.livemode,
            "name": params.get("name") or None,
            "email": params.get("email") or None,
            "metadata": {k: str(v) for k, v in (params.get("metadata") or {}).items() if v != ""},
        }
        self.put(customer)
        self._emit("customer.created", customer, key)
        return copy.deepcopy(customer)

    def _update(self, customer_id: str, params: dict[str, Any], key: str | None) -> dict[str, Any]:
        current = self._live(customer_id)
        self._check(params)
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
            self._emit("customer.updated", current, key, previous)
        return copy.deepcopy(current)

    def _delete(self, customer_id: str) -> dict[str, Any]:
        current = self._live(customer_id)
        del self.customers[customer_id]
        self.deleted.add(customer_id)
        self._emit("customer.deleted", {**current, "deleted": True}, None)
        return {"id": customer_id, "object": "customer", "deleted": True}

    def _retrieve(self, customer_id: str) -> dict[str, Any]:
        if customer_id in self.deleted:
            return {"id": customer_id, "object": "customer", "deleted": True}
        return copy.deepcopy(self._live(customer_id))

    def _list(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = int(params.get("limit", 10))
        if not 1 <= limit <= 100:
            raise _invalid("limit", "Invalid integer: must be between 1 and 100")
        after = params.get("starting_after")
        start = len(self._created) - 1
        if after is not None:
            if after not in self.customers:  # unknown, or deleted since: Stripe answers 404 too
                raise _missing(after)
            start = self._position[after] - 1
        page: list[dict[str, Any]] = []
        more = False
        for position in range(start, -1, -1):  # newest first, from just below the cursor
            customer = self.customers.get(self._created[position])
            if customer is None or not _listed(customer, params):
                continue
            if len(page) == limit:
                more = True
                break
            page.append(customer)
        return {"object": "list", "data": copy.deepcopy(page), "has_more": more, "url": "/v1/customers"}

    def put(self, customer: dict[str, Any]) -> None:
        """Hold ``customer`` (a new one is listed as the newest) without an event: what tests and
        benchmarks use to fill the account behind the API's back."""
        if customer["id"] not in self._position:
            self._position[customer["id"]] = len(self._created)
            self._created.append(customer["id"])
        self.customers[customer["id"]] = customer

    def _list_events(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = int(params.get("limit", 10))
        if not 1 <= limit <= 100:
            raise _invalid("limit", "Invalid integer: must be between 1 and 100")
        types = params.get("types") or ([params["type"]] if "type" in params else None)
        if isinstance(types, Mapping):  # form-encoded, as the SDK sends a list: types[0]=...&types[1]=...
            types = list(types.values())
        created = params.get("created")
        oldest = int((self._clock.now() - EVENT_RETENTION).timestamp())
        newest_first = [
            e
            for e in reversed(self.events)
            if e["created"] >= oldest
            and (types is None or e["type"] in types)
            and _listed({"created": e["created"]}, {"created": created})
        ]
        after = params.get("starting_after")
        if after is not None:
            ids = [e["id"] for e in newest_first]
            if after not in ids:
                raise _invalid_request(f"No such event: '{after}'", "starting_after", "resource_missing", 404)
            newest_first = newest_first[ids.index(after) + 1 :]
        page = newest_first[:limit]
        return {"object": "list", "data": copy.deepcopy(page), "has_more": len(newest_first) > limit, "url": "/v1/events"}

    # -- idempotency and faults ------------------------------------------------------------------
    def _idempotently(
        self, method: str, key: str | None, params: dict[str, Any], run: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        now = self._clock.now()
        if key is not None and key in self._idempotent:
            saved_method, saved_params, saved, saved_at = self._idempotent[key]
            if now - saved_at < KEY_LIFETIME:
                if (saved_method, saved_params) != (method, params):
                    raise stripe.IdempotencyError(
                        "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                        http_status=400,
                        code="idempotency_key_in_use",
                    )
                if isinstance(saved, stripe.StripeError):
                    raise _replayed(saved)
                return copy.deepcopy(saved)
            del self._idempotent[key]
        try:
            result = self._faulty(method, run)
        except stripe.StripeError as exc:
            # Saved once execution started (5xx); not saved: validation errors and rate limits.
            if key is not None and (exc.http_status or 0) >= 500:
                self._idempotent[key] = (method, params, exc, now)
            raise
        if key is not None:
            self._idempotent[key] = (method, params, copy.deepcopy(result), now)
        return result

    def _faulty(self, method: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        fault = self.faults[method].popleft() if self.faults[method] else None
        if fault is None:
            return run()
        if fault.executed:
            run()
        if fault.status == 429:
            raise stripe.RateLimitError("Too many requests", http_status=429, code="rate_limit")
        if 400 <= fault.status < 500:
            raise _invalid("email", "Invalid email address (refused by the test server)")
        raise stripe.APIError("An unknown error occurred", http_status=fault.status)

    def _check(self, params: Mapping[str, Any]) -> None:
        _check(params)
        if any(refused(params) for refused in self.refusals):
            raise _invalid("name", "Invalid parameters (refused by the test server)")

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
        self.events.append(
            {
                "id": f"evt_{next(self._seq):06d}{self.ids.getrandbits(48):012x}",
                "object": "event",
                "type": kind,
                "created": self._timestamp(),
                "livemode": self.livemode,
                "data": data,
                "request": {"id": f"req_{self.ids.getrandbits(56):014x}", "idempotency_key": key},
            }
        )
        self.new_events.set()


class _Events:
    def __init__(self, stripe_: InMemoryStripe) -> None:
        self._stripe = stripe_

    async def list_async(
        self, params: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        self._stripe.calls.append(("events", None))
        return self._stripe._faulty("events", lambda: self._stripe._list_events(dict(params or {})))


def _listed(customer: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    if "email" in params and customer.get("email") != params["email"]:  # exact and case-sensitive, as Stripe's
        return False
    created = params.get("created")
    if isinstance(created, (int, str)):
        return bool(customer["created"] == int(created))
    if isinstance(created, Mapping):
        bounds = {"gte": lambda a, b: a >= b, "gt": lambda a, b: a > b, "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b}
        return all(bounds[op](customer["created"], int(value)) for op, value in created.items() if op in bounds)
    return True


def _replayed(error: stripe.StripeError) -> stripe.StripeError:
    again = copy.copy(error)
    again.headers = {**(error.headers or {}), "Idempotent-Replayed": "true"}
    return again


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
    return _invalid_request(message, param, "parameter_invalid", 400)


def _missing(customer_id: str) -> stripe.InvalidRequestError:
    return _invalid_request(f"No such customer: '{customer_id}'", "id", "resource_missing", 404)


def _invalid_request(message: str, param: str, code: str, http_status: int) -> stripe.InvalidRequestError:
    return stripe.InvalidRequestError(message, param, code=code, http_status=http_status)  # type: ignore[no-untyped-call]  # stripe 16: InvalidRequestError.__init__ has no annotations
