"""How the API's HTTP server (uvicorn) treats connections: pass ``**uvicorn_options()`` to
``uvicorn.Config``.

What uvicorn can bound, it does here: idle keep-alive connections are closed, an unfinished request
head beyond a size is refused (400) and the connection closed (h11 bounds what it buffers; a head
that arrives whole in one read is parsed whatever its size), connections beyond a cap are
answered 503 at once.
What it cannot: uvicorn (h11 or httptools alike) has no timeout for a request's head or body, so a
client that sends its headers or its body slowly (slowloris) holds a connection for as long as it
likes. In production the API must sit behind a proxy that buffers requests and times them out
(README, "HTTP timeouts / proxy"); tests/http/test_server_limits.py pins both sides.
"""

from __future__ import annotations

from typing import Any

KEEP_ALIVE_SECONDS = 5  # an idle connection between requests is closed after this
MAX_REQUEST_HEAD_BYTES = 16 * 1024  # an unfinished request head buffered beyond this: 400, connection closed
# Connections and requests in progress before new requests get an immediate 503: well above what
# the database pool serves (20 connections, 3 s wait), well below the usual 1024 open files limit.
MAX_CONCURRENCY = 512
GRACEFUL_SHUTDOWN_SECONDS = 10  # requests in flight at SIGTERM get this long to finish


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` (besides the app, host, port and logging)."""
    return {
        # h11, named: the limits below are h11's, and "auto" would switch to httptools (which
        # ignores h11_max_incomplete_event_size) if someone installed it.
        "http": "h11",
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "h11_max_incomplete_event_size": MAX_REQUEST_HEAD_BYTES,
        "limit_concurrency": MAX_CONCURRENCY,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "server_header": False,  # no "server: uvicorn" for scanners
    }
