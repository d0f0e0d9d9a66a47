"""How the API's HTTP server (uvicorn) treats connections: pass ``**uvicorn_options()`` to
``uvicorn.Config``.

The parser is httptools (C, in place of h11's pure Python), through
``BoundedHttpTools``, which adds the one bound h11 had and httptools lacks: an unfinished request
head beyond a size is refused (400) and the connection closed (a head that arrives whole in one
read is parsed whatever its size, as with h11). Idle keep-alive connections are closed, and
connections beyond a cap are answered 503 at once.
What uvicorn cannot bound: it has no timeout for a request's head or body, so a client that sends
its headers or its body slowly (slowloris) holds a connection for as long as it likes. In
production the API must sit behind a proxy that buffers requests and times them out
(docs/reference/api-conventions.md); tests/http/test_server_limits.py pins both sides.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

KEEP_ALIVE_SECONDS = 5  # an idle connection between requests is closed after this
MAX_REQUEST_HEAD_BYTES = 16 * 1024  # an unfinished request head received beyond this: 400, connection closed
# Connections and requests in progress before new requests get an immediate 503: well above what
# the database pool serves (20 connections, 3 s wait), well below the usual 1024 open files limit.
MAX_CONCURRENCY = 512
GRACEFUL_SHUTDOWN_SECONDS = 10  # requests in flight at SIGTERM get this long to finish


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing an unfinished request head beyond
    ``MAX_REQUEST_HEAD_BYTES`` (httptools would buffer it whatever its size)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        counted = self._in_head
        if counted:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and not counted:
            # This read ended a message and began the next head: counted whole (what belonged to
            # the previous body too -- erring towards the bound).
            self._head_bytes += len(data)
        if self._in_head and self._head_bytes > MAX_REQUEST_HEAD_BYTES and not self.transport.is_closing():
            self.send_400_response("Request head too large")

    def send_400_response(self, msg: str) -> None:
        """What the server itself refuses (a head too large, a request that is not HTTP) is a
        problem+json like every other error answer, not uvicorn's text/plain."""
        body = json.dumps({"type": "about:blank", "title": "Bad request", "status": 400, "detail": msg}).encode()
        head = [STATUS_LINE[400], *(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)]
        head += [
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    # Counted: every read while a head is unfinished, from the end of the previous head on.
    def on_message_begin(self) -> None:
        self._in_head = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        super().on_headers_complete()


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` (besides the app, host, port and logging)."""
    return {
        "http": BoundedHttpTools,
        # The standard event loop: the API waits on PostgreSQL, Kafka and its own Python, not on
        # its loop; and the worker and the tests run on this one.
        "loop": "asyncio",
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "limit_concurrency": MAX_CONCURRENCY,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "server_header": False,  # no "server: uvicorn" for scanners
    }
