"""A Stripe-compatible HTTP server for tests that run real processes: the in-memory directory
behind Stripe's wire format (form-encoded bodies, Idempotency-Key, JSON errors), on loopback.

Faults are injectable: a fraction of calls answered 429/500 before anything happens, and a gate
that holds a response after the change was applied (to kill a worker mid-call).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import stripe
import uvicorn

from adapters.memory.stripe import InMemoryStripe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _params(body: bytes) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        if key.startswith("metadata[") and key.endswith("]"):
            params.setdefault("metadata", {})[key[9:-1]] = value
        else:
            params[key] = value
    return params


class StripeServer:
    def __init__(self, *, fault_rate: float = 0.0, seed: int = 0) -> None:
        self.stripe = InMemoryStripe()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.fault_rate = fault_rate
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, idempotency key)
        self.dashboard_requests = 0
        self.faults = 0
        self.hold: Callable[[str, str], bool] | None = None  # (method, path) -> hold the response?
        self.held = threading.Event()
        self._random = random.Random(seed)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> StripeServer:
        config = uvicorn.Config(self._app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the Stripe test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold = None
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(10)

    # -- the ASGI app ------------------------------------------------------------------------
    async def _app(self, scope: dict, receive: Callable, send: Callable) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        key = headers.get("idempotency-key")
        dashboard = headers.get("x-dashboard") == "1"  # edits "made in the dashboard": never faulted
        if dashboard:
            self.dashboard_requests += 1
        else:
            self.requests.append((method, path, key))
        if not dashboard and self.fault_rate and self._random.random() < self.fault_rate:
            self.faults += 1
            status, payload = self._random.choice([
                (429, {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}}),
                (500, {"error": {"type": "api_error", "message": "An unknown error occurred"}}),
            ])
            return await self._send(send, status, payload)
        status, payload = await self._route(method, path, _params(body), key, scope.get("query_string", b""))
        if self.hold is not None and self.hold(method, path):
            self.held.set()
            while self.hold is not None:  # the test kills the caller meanwhile
                await asyncio.sleep(0.01)
        await self._send(send, status, payload)

    async def _route(self, method: str, path: str, params: dict, key: str | None, query: bytes) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        options = {"idempotency_key": key} if key else None
        try:
            if parts == ["v1", "customers"] and method == "POST":
                return 200, await self.stripe.create_async(params=params, options=options)
            if parts == ["v1", "customers"] and method == "GET":
                return 200, await self.stripe.list_async(params=_params(query))
            if len(parts) == 3 and parts[:2] == ["v1", "customers"]:
                if method == "POST":
                    return 200, await self.stripe.update_async(parts[2], params=params, options=options)
                if method == "GET":
                    return 200, await self.stripe.retrieve_async(parts[2])
                if method == "DELETE":
                    return 200, await self.stripe.delete_async(parts[2])
        except stripe.StripeError as exc:
            return exc.http_status or 400, {"error": {"type": "invalid_request_error", "code": exc.code, "message": exc.user_message or str(exc)}}
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({method}: {path})"}}

    @staticmethod
    async def _send(send: Callable, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
