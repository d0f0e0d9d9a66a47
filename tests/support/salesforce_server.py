"""A Salesforce org on loopback for tests that run real processes: the in-memory org
(``adapters/memory/salesforce.py``) behind a real HTTP server, so that a `custsync worker` pointed
at ``SALESFORCE_INSTANCE_URL=<server.url>`` speaks to it over the wire as it would to Salesforce.

Every request (the OAuth token endpoint and the whole REST surface) is turned into an
``httpx.Request`` and answered with ``org.handle(...)``: its status, headers (``Sforce-Limit-Info``
among them) and body, unchanged. The org's ``instance_url`` is this server's URL, so the token
answer sends the client back here.

The org is plain Python data that the server's thread reads and writes: a test that acts in the
org as a person does so under ``lock`` (``create``/``edit``/``delete``/``merge`` here take it), so
that a query never sees a half-made change.

``down_status``: an outage -- every call, token requests included, is answered with that status
before the org sees it (a Salesforce error list for data calls, an OAuth error for token calls).
``requests``: (method, path) of every request that arrived, outage or not; ``timed`` the same with
when it was answered and the status (for failure messages and "did it retry" questions).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn

from adapters.memory.salesforce import InMemorySalesforce
from tests.support.stripe_server import free_port
from tests.support.threaded import request_body, serve, stop

TOKEN_PATH = "/services/oauth2/token"


class SalesforceServer:
    def __init__(self, *, client_id: str = "custsync-it", client_secret: str = "secret", **org_options: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id, self.client_secret = client_id, client_secret
        self.org = InMemorySalesforce(client_id=client_id, client_secret=client_secret, instance_url=self.url, **org_options)
        self.lock = threading.RLock()  # the org's data: the server's thread and the test's share it
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, outage or not
        self.timed: list[tuple[float, str, str, int]] = []  # (time.time(), method, path, status answered)
        self.down_status: int | None = None  # an outage: every call, token requests too, gets this
        self.outage_answers = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- a person in the org (under the lock) -------------------------------------------------------
    def create(self, **fields: Any) -> dict[str, Any]:
        with self.lock:
            return dict(self.org.create(**fields))

    def edit(self, contact_id: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            return dict(self.org.edit(contact_id, **fields))

    def delete(self, contact_id: str) -> None:
        with self.lock:
            self.org.delete(contact_id)

    def merge(self, master_id: str, loser_id: str) -> None:
        with self.lock:
            self.org.merge(master_id, loser_id)

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        """A copy of the Contact (deleted ones too), or None."""
        with self.lock:
            contact = self.org.contacts.get(contact_id)
            return dict(contact) if contact is not None else None

    def live(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.org.live()]

    def calls_to(self, method: str, path: str) -> int:
        """How many ``method`` requests arrived for exactly ``path``."""
        return sum(1 for m, p in list(self.requests) if (m, p) == (method, path))

    # -- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> SalesforceServer:
        self._server, self._thread = serve(self._app, self.port, "Salesforce test server")
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self._server, self._thread)

    # -- the ASGI app -------------------------------------------------------------------------------
    async def _app(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        body = await request_body(receive)
        method, path = scope["method"], scope["path"]
        self.requests.append((method, path))
        if self.down_status is not None:
            self.outage_answers += 1
            self.timed.append((time.time(), method, path, self.down_status))
            await self._send(send, self._outage(path))
            return
        raw_path = scope.get("raw_path") or path.encode()
        query = scope.get("query_string", b"")
        url = f"{self.url}{raw_path.decode('latin-1')}" + (f"?{query.decode('latin-1')}" if query else "")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        request = httpx.Request(method, url, headers=headers, content=body)
        with self.lock:
            response = self.org.handle(request)
        self.timed.append((time.time(), method, path, response.status_code))
        await self._send(send, response)

    def _outage(self, path: str) -> httpx.Response:
        assert self.down_status is not None
        headers = {"Content-Type": "application/json;charset=UTF-8"}
        if path == TOKEN_PATH:
            body: Any = {"error": "unknown_error", "error_description": "Salesforce is unavailable (test server outage)"}
        else:
            body = [
                {"errorCode": "SERVER_UNAVAILABLE", "message": "Salesforce is unavailable (test server outage)", "fields": []}
            ]
        return httpx.Response(self.down_status, headers=headers, json=body)

    @staticmethod
    async def _send(send: Callable, response: httpx.Response) -> None:
        content = response.content
        skip = {"content-length", "transfer-encoding", "content-encoding"}
        headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.multi_items() if k.lower() not in skip
        ]
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": content})
