"""A Stripe-compatible HTTP server for tests that run real processes: in-memory Stripe accounts
(``adapters/memory/stripe.py``) behind Stripe's wire format (bearer keys, form-encoded bodies,
Idempotency-Key, JSON errors, the ``Idempotent-Replayed`` header), on loopback.

Faithful where Stripe is unkind: each API key belongs to one account and an unknown key gets 401;
a customer of another account is a 404; a 500 is saved under its Idempotency-Key and replayed.
Faults are injectable: a fraction of calls answered 429 (before anything happens) or 500 (saved
under the key, the change made or not), and a gate that holds a response after the change was
applied (to kill a worker mid-call). For benchmarks: ``latency`` added to every API call (real
Stripe answers in 100-300 ms), and Stripe's request rate limits (``rate_limit`` per second per
account for reads and as many for writes, as Stripe counts them: a token bucket each, of that many
requests refilled at that rate -- the algorithm Stripe describes for its limiter: 429 ``rate_limit``
beyond it, nothing done).
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import stripe
import uvicorn

from adapters.memory.stripe import InMemoryStripe
from tests.support.threaded import request_body, serve, stop

_METHODS = {("POST", 2): "create", ("GET", 2): "list", ("POST", 3): "update", ("GET", 3): "retrieve", ("DELETE", 3): "delete"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _params(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding: ``metadata[k]=v`` and ``created[gte]=n`` become nested objects."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        outer, bracket, inner = key.partition("[")
        if bracket and inner.endswith("]"):
            params.setdefault(outer, {})[inner[:-1]] = value
        else:
            params[key] = value
    return params


class StripeServer:
    """``stripe`` is the default account: every ``sk_test_...`` key not given to another account
    (``add_account``) belongs to it."""

    def __init__(self, *, fault_rate: float = 0.0, seed: int = 0, latency: float = 0.0, rate_limit: float | None = None) -> None:
        self.stripe = InMemoryStripe(account_id="acct_default")
        self.accounts: dict[str, InMemoryStripe] = {}  # api key -> account, besides the default
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.fault_rate = fault_rate
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, idempotency key)
        self.dashboard_requests = 0
        self.faults = 0
        self.down_status: int | None = None  # an outage: every API call (not the dashboard) gets this
        self.outage_answers = 0
        self.hold: Callable[[str, str], bool] | None = None  # (method, path) -> hold the response?
        self.held = threading.Event()
        self.latency, self.rate_limit = latency, rate_limit
        self.rate_limited = 0  # calls refused with 429 for going over ``rate_limit``
        self.timed: list[tuple[float, str, str, dict[str, Any]]] = []  # (monotonic time, method, path, params)
        self._buckets: dict[tuple[int, bool], tuple[float, float]] = {}  # per account, reads and writes: (tokens, when counted)
        self._random = random.Random(seed)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def add_account(self, api_key: str, account_id: str) -> InMemoryStripe:
        account = self.accounts[api_key] = InMemoryStripe(account_id=account_id)
        return account

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> StripeServer:
        self._server, self._thread = serve(self._app, self.port, "Stripe test server")
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold = None
        stop(self._server, self._thread)

    # -- the ASGI app ------------------------------------------------------------------------
    async def _app(self, scope: dict, receive: Callable, send: Callable) -> None:
        body = await request_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        key = headers.get("idempotency-key")
        account = self._account(headers.get("authorization", ""))
        if account is None:
            error = {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
            await self._send(send, 401, error)
            return
        dashboard = headers.get("x-dashboard") == "1"  # edits "made in the dashboard": never faulted
        if dashboard:
            self.dashboard_requests += 1
        else:
            self.requests.append((method, path, key))
        if self.down_status is not None and not dashboard:
            # An incident at Stripe's edge: refused before anything ran, so nothing is saved
            # under the idempotency key either.
            self.outage_answers += 1
            error = {"error": {"type": "api_error", "message": "Stripe is temporarily unavailable (test server outage)"}}
            await self._send(send, self.down_status, error)
            return
        parts = path.strip("/").split("/")
        call = _METHODS.get((method, len(parts))) if parts[:2] == ["v1", "customers"] else None
        if (method, parts) == ("GET", ["v1", "events"]):
            call = "events"  # catch-up and create look-ups get 429s and 500s like every other call
        params = _params(body)
        if not dashboard:
            arrived = time.monotonic()
            self.timed.append((arrived, method, path, params))
            if self.rate_limit is not None and self._over_the_limit(account, method == "GET", arrived):
                self.rate_limited += 1
                error = {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "rate_limit",
                        "message": "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
                    }
                }
                await self._send(send, 429, error)
                return
            if self.latency:
                await asyncio.sleep(self.latency)
        if call and not dashboard and self.fault_rate and self._random.random() < self.fault_rate:
            self.faults += 1
            # 429: refused before anything happened. 500: execution started -- Stripe saves it
            # under the idempotency key, and the change may or may not have been made.
            status = self._random.choice([429, 500])
            account.fail_next(call, status, executed=status == 500 and self._random.random() < 0.5)
        status, payload, extra = await self._route(account, method, parts, params, key, scope.get("query_string", b""))
        if self.hold is not None and self.hold(method, path):
            self.held.set()
            while self.hold is not None:  # the test kills the caller meanwhile
                await asyncio.sleep(0.01)
        await self._send(send, status, payload, extra)

    def _over_the_limit(self, account: InMemoryStripe, read: bool, now: float) -> bool:
        rate = self.rate_limit or 0.0
        bucket = (id(account), read)
        tokens, then = self._buckets.get(bucket, (rate, now))
        tokens = min(rate, tokens + (now - then) * rate)
        if tokens < 1:
            self._buckets[bucket] = (tokens, now)
            return True
        self._buckets[bucket] = (tokens - 1, now)
        return False

    def _account(self, authorization: str) -> InMemoryStripe | None:
        scheme, _, api_key = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        if api_key in self.accounts:
            return self.accounts[api_key]
        return self.stripe if api_key.startswith("sk_test_") else None

    async def _route(
        self, account: InMemoryStripe, method: str, parts: list[str], params: dict, key: str | None, query: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        options = {"idempotency_key": key} if key else None
        try:
            if parts == ["v1", "account"] and method == "GET":
                return 200, await account.retrieve_current_async(), {}
            if parts == ["v1", "events"] and method == "GET":
                return 200, await account.event_api.list_async(params=_params(query)), {}
            if parts == ["v1", "customers"] and method == "POST":
                return 200, await account.create_async(params=params, options=options), {}
            if parts == ["v1", "customers"] and method == "GET":
                return 200, await account.list_async(params=_params(query)), {}
            if len(parts) == 3 and parts[:2] == ["v1", "customers"]:
                if method == "POST":
                    return 200, await account.update_async(parts[2], params=params, options=options), {}
                if method == "GET":
                    return 200, await account.retrieve_async(parts[2]), {}
                if method == "DELETE":
                    return 200, await account.delete_async(parts[2]), {}
        except stripe.StripeError as exc:
            kind = "api_error" if (exc.http_status or 500) >= 500 else "invalid_request_error"
            error = {"error": {"type": kind, "code": exc.code, "message": exc.user_message or str(exc)}}
            return exc.http_status or 500, error, dict(exc.headers or {})
        return (
            404,
            {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({method}: /{'/'.join(parts)})"}},
            {},
        )

    @staticmethod
    async def _send(send: Callable, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        # Stripe names every answer, errors included, with a Request-Id (support quotes it back).
        request_id = f"req_{secrets.token_hex(7)}"
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"request-id", request_id.encode()),
        ]
        raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
