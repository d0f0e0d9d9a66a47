"""Every request gets a correlation id: the caller's ``X-Request-Id`` if it is a plausible one
(1-128 of ``A-Z a-z 0-9 . _ : -``), else a new one; it is bound for the request's log lines and
for the outbox events the request writes (so it follows the change to the external call), and
sent back as ``X-Request-Id``. A plain ASGI middleware: no per-request object beyond the id."""

from __future__ import annotations

import re

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from application.correlation import bound, new_correlation_id

HEADER = b"x-request-id"
_PLAUSIBLE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def correlation_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:  # a str enum: equal to the server's plain "http"
            await app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), None)
        correlation = given.decode() if given is not None and _PLAUSIBLE.fullmatch(given) else new_correlation_id()
        raw = correlation.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, raw)]
            await send(message)

        with bound(correlation_id=correlation):
            await app(scope, receive, send_with_id)

    return middleware
