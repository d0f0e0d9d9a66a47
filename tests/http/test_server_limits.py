"""The real HTTP server (uvicorn with ``uvicorn_options()``) on 127.0.0.1, spoken to over raw
sockets: what it bounds (idle keep-alive, oversized heads, the number of connections) and what it
does not (a slow request head or body), which is why production needs the proxy docs/reference/api-conventions.md names.

No timing is asserted: each wait is bounded (``BOUND``) and only its outcome is checked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import uvicorn

from entrypoints.http.app import create_app
from entrypoints.http.server import MAX_REQUEST_HEAD_BYTES, BoundedHttpTools, uvicorn_options
from tests.support.system import EmbeddedSystem

BOUND = 15.0  # seconds: the most any one wait may take before the test fails
HEALTH = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"


class Server:
    def __init__(self, server: uvicorn.Server) -> None:
        self.server = server

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


async def serve(**overrides) -> AsyncIterator[Server]:
    options = {**uvicorn_options(), **overrides}
    config = uvicorn.Config(
        create_app(EmbeddedSystem().container), host="127.0.0.1", port=0, log_config=None, access_log=False, **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # bounded: the server is up within a few event-loop turns
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield Server(server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, BOUND)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    # A one-second keep-alive so that the bounded waits below are short; the rest as in production.
    async for s in serve(timeout_keep_alive=1):
        yield s


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
    status = int(head.split(b" ", 2)[1])
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
    body = await asyncio.wait_for(reader.readexactly(length), BOUND)
    return status, body


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), BOUND) == b""


def test_production_options_name_the_bounded_httptools_parser_and_its_limits():
    options = uvicorn_options()

    assert options["http"] is BoundedHttpTools and options["timeout_keep_alive"] > 0 and options["limit_concurrency"] > 0
    uvicorn.Config(create_app(EmbeddedSystem().container), **options).load()  # every option is one uvicorn knows


async def test_an_idle_keep_alive_connection_is_closed_by_the_server(server):
    reader, writer = await server.connect()
    writer.write(HEALTH)
    assert (await read_response(reader))[0] == 200

    assert await closed_by_server(reader)  # nothing more sent: closed after the keep-alive timeout
    writer.close()


async def test_an_unfinished_request_head_over_the_limit_is_400_and_the_connection_closed(server):
    """What is buffered of an *unfinished* head is bounded (a head that arrives whole in one read
    is parsed, whatever its size): a client cannot make the server hold an endless head, sent at
    once or dripped (httptools alone would buffer it all: BoundedHttpTools)."""
    reader, writer = await server.connect()
    writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"a" * (MAX_REQUEST_HEAD_BYTES + 1024))

    answer = await asyncio.wait_for(reader.read(), BOUND)  # to the end: the server closes the connection

    assert answer.startswith(b"HTTP/1.1 400 ")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()  # like every other error answer
    assert json.loads(body) == {"type": "about:blank", "title": "Bad request", "status": 400, "detail": "Request head too large"}
    writer.close()


async def test_a_head_dripped_in_small_pieces_after_an_earlier_request_is_refused_once_over_the_limit(server):
    reader, writer = await server.connect()
    writer.write(HEALTH)  # a first request on the connection: its bytes do not count for the next
    assert (await read_response(reader))[0] == 200
    writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\n")
    for _ in range(MAX_REQUEST_HEAD_BYTES // 512 + 4):  # bounded: just past the limit
        if writer.is_closing() or reader.at_eof():
            break
        writer.write(b"X-Pad: " + b"a" * 503 + b"\r\n")
        try:
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(0)

    try:
        answer = await asyncio.wait_for(reader.read(), BOUND)
    except ConnectionResetError:
        # The server answered 400 and closed while the client was still sending: the kernel then
        # resets the connection and drops the answer unread. Refused either way; what must not
        # happen is the server buffering on and never answering (wait_for's TimeoutError).
        answer = b"HTTP/1.1 400 (reset)"

    assert answer.startswith(b"HTTP/1.1 400 ")
    writer.close()


async def test_a_large_head_within_the_limit_and_a_large_body_are_served_then_a_next_request(server):
    """Only heads count: a 12 KiB head, then a 200 KiB body sent in pieces, then a next request on
    the same connection whose head starts in the read that ends the body."""
    reader, writer = await server.connect()
    padding = b"".join(b"X-Pad-%d: %s\r\n" % (n, b"a" * 400) for n in range(30))  # ~12 KiB of head
    body = b'{"name": "' + b"a" * (200 * 1024) + b'"}'
    writer.write(
        b"POST /api/v1/customers HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + b"Content-Length: %d\r\n" % len(body)
        + padding
        + b"\r\n"
    )
    for start in range(0, len(body) - 100, 16 * 1024):  # bounded: 13 pieces
        writer.write(body[start : min(start + 16 * 1024, len(body) - 100)])
        await writer.drain()
    writer.write(body[-100:] + HEALTH)
    status, _ = await read_response(reader)
    assert status in (201, 413, 422)  # the API's answer to the body: not the server's 400 for a head
    assert (await read_response(reader))[0] == 200
    writer.close()


async def test_connections_beyond_the_cap_are_answered_503_at_once():
    async for server in serve(timeout_keep_alive=1, limit_concurrency=2):
        held = [await server.connect() for _ in range(2)]
        reader, writer = await server.connect()
        writer.write(HEALTH)

        status, _ = await read_response(reader)

        assert status == 503
        for _, w in [*held, (reader, writer)]:
            w.close()


@pytest.mark.parametrize(
    "partial, rest",
    [
        (b"", HEALTH),
        (b"GET /health HTTP/1.1\r\nHost: te", b"st\r\n\r\n"),
        (
            b"POST /api/v1/customers HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 15\r\n\r\n{"name":',
            b' "Ada"}',
        ),
    ],
    ids=["nothing-sent", "half-sent-head", "half-sent-body"],
)
async def test_uvicorn_does_not_bound_a_slow_request_so_a_proxy_must(server, partial, rest):
    """Pins the limitation the docs' proxy requirement answers: a connection that is slow to
    send its request outlives an idle one (closed after the keep-alive timeout), and is served
    whenever it finishes. If uvicorn ever bounds it, this fails: update docs/reference/api-conventions.md and server.py."""
    slow_reader, slow_writer = await server.connect()
    slow_writer.write(partial)
    await slow_writer.drain()
    idle_reader, idle_writer = await server.connect()
    idle_writer.write(HEALTH)
    assert (await read_response(idle_reader))[0] == 200
    assert await closed_by_server(idle_reader)

    slow_writer.write(rest)

    assert (await read_response(slow_reader))[0] in (200, 201)
    slow_writer.close()
    idle_writer.close()
