"""A test server's ASGI app served by uvicorn on loopback, in a daemon thread; and its request body."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import uvicorn


def serve(app: Callable, port: int, what: str) -> tuple[uvicorn.Server, threading.Thread]:
    """Start serving ``app`` on 127.0.0.1:``port``; returns once it accepts connections."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", interface="asgi3")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {what} did not start")
        time.sleep(0.01)
    return server, thread


def stop(server: uvicorn.Server | None, thread: threading.Thread | None) -> None:
    assert server is not None and thread is not None
    server.should_exit = True
    thread.join(10)


async def request_body(receive: Callable) -> bytes:
    """The whole body of an ASGI HTTP request, however many messages it came in."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body
