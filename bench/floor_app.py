"""The framework-and-driver floor of bench/api: a bare Litestar app on a raw asyncpg pool that
answers custsync's catalog routes with the same SQL, and nothing else -- no dependency injection,
no unit of work, no SQLAlchemy, no guards beyond the bearer token, no problem documents, no
OpenAPI. What custsync spends above these figures is its own.

- ``POST /api/v1/customers``: one transaction -- the customers row (INSERT ... RETURNING) and its
  outbox row (the same CustomerChanged payload custsync writes, bound as text and cast to jsonb);
  201 with the customer, ``ETag`` and ``Location``;
- ``GET /api/v1/customers/{id}``: one SELECT of the row (custsync also reads the customer's
  mappings and sync history, in a transaction);
- ``GET /api/v1/customers``: one page, ``limit`` (50; at most 100) rows by id plus one to know if
  there are more, ``cursor`` as custsync encodes it;
- ``GET /health``: constant.

Served like ``custsync api`` (uvicorn, ``entrypoints.http.server.uvicorn_options()``) on 127.0.0.1:

    DATABASE_URL=postgresql+asyncpg://... API_TOKEN=... python -m bench.floor_app --port 8100 [--workers N]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import os
from datetime import UTC, datetime

import asyncpg
import msgspec
import uvicorn
from litestar import Litestar, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, NotFoundException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.status_codes import HTTP_201_CREATED

from domain.customer import CustomerData
from domain.messages import ChangeKind, CustomerChanged, encode, new_event_id
from entrypoints.http.server import uvicorn_options

HOST = "127.0.0.1"
PATH = "/api/v1/customers"
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 100  # custsync's list: entrypoints.http.customers, application.customers.queries
BIGINT_MAX = 2**63 - 1
POOL_MIN, POOL_MAX = 10, 20  # custsync: pool_size 10 + max_overflow 10
POOL_TIMEOUT = 3.0  # custsync's db_pool_timeout

INSERT_CUSTOMER = (
    "INSERT INTO customers (name, email, version, created_at, updated_at, deleted, name_changed_at, email_changed_at) "
    "VALUES ($1, $2, 1, $3, $3, false, $3, $3) RETURNING id, name, email, version, created_at, updated_at"
)
INSERT_OUTBOX = "INSERT INTO outbox (event_id, customer_id, payload) VALUES ($1, $2, CAST($3::text AS jsonb))"
SELECT_ONE = "SELECT * FROM customers WHERE id = $1"
SELECT_PAGE = "SELECT * FROM customers WHERE deleted IS false ORDER BY id LIMIT $1"
SELECT_PAGE_AFTER = "SELECT * FROM customers WHERE deleted IS false AND id > $2 ORDER BY id LIMIT $1"


class CustomerIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str | None = None
    email: str | None = None


class CustomerOut(msgspec.Struct):
    id: int
    name: str | None
    email: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class PageOut(msgspec.Struct):
    data: list[CustomerOut]
    limit: int
    next_cursor: str | None = None


class Health(msgspec.Struct):
    status: str


def _out(row: asyncpg.Record) -> CustomerOut:
    return CustomerOut(row["id"], row["name"], row["email"], row["version"], row["created_at"], row["updated_at"])


def _bearer(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    expected: str = connection.app.state.api_token
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise NotAuthorizedException("a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


@post(PATH, guards=[_bearer], status_code=HTTP_201_CREATED)
async def create_customer(data: CustomerIn, state: State) -> Response[CustomerOut]:
    at = datetime.now(UTC)
    pool: asyncpg.Pool = state.pool
    async with pool.acquire(timeout=POOL_TIMEOUT) as connection, connection.transaction():
        row = await connection.fetchrow(INSERT_CUSTOMER, data.name, data.email, at)
        event = CustomerChanged(
            event_id=new_event_id(),
            customer_id=row["id"],
            kind=ChangeKind.CREATED,
            version=1,
            data=CustomerData(data.name, data.email),
            occurred_at=at,
        )
        await connection.execute(INSERT_OUTBOX, event.event_id, row["id"], encode(event).decode())
    headers = {"ETag": f'"{row["version"]}"', "Location": f"{PATH}/{row['id']}"}
    return Response(_out(row), status_code=HTTP_201_CREATED, headers=headers)


@get(f"{PATH}/{{customer_id:int}}", guards=[_bearer])
async def get_customer(customer_id: int, state: State) -> Response[CustomerOut]:
    row = None
    if 0 < customer_id <= BIGINT_MAX:
        row = await state.pool.fetchrow(SELECT_ONE, customer_id)
    if row is None or row["deleted"]:
        raise NotFoundException(f"no customer has the id {customer_id}")
    return Response(_out(row), headers={"ETag": f'"{row["version"]}"'})


@get(PATH, guards=[_bearer])
async def list_customers(state: State, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None) -> PageOut:
    size = max(1, min(limit, MAX_PAGE_SIZE))
    after = _decode_cursor(cursor)
    pool: asyncpg.Pool = state.pool
    if after is None:
        rows = await pool.fetch(SELECT_PAGE, size + 1)
    else:
        rows = await pool.fetch(SELECT_PAGE_AFTER, size + 1, after)
    more = len(rows) > size
    rows = rows[:size]
    return PageOut([_out(r) for r in rows], size, _encode_cursor(rows[-1]["id"]) if more else None)


@get("/health")
async def health() -> Health:
    return Health(status="healthy")


def _encode_cursor(after_id: int) -> str:
    return base64.urlsafe_b64encode(f"after:{after_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        prefix, _, value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        if prefix == "after" and value.isdigit() and len(value) <= 18:
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationException("cursor is not a cursor returned by this API")


def dsn() -> str:
    """DATABASE_URL as asyncpg takes it (a SQLAlchemy ``postgresql+asyncpg://`` URL is accepted)."""
    url = os.environ["DATABASE_URL"]
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def create_app() -> Litestar:
    """The app (a uvicorn factory): DATABASE_URL and API_TOKEN from the environment."""
    token = os.environ.get("API_TOKEN", "")
    if not token:
        raise SystemExit("API_TOKEN is not set")

    async def open_pool(app: Litestar) -> None:
        app.state.pool = await asyncpg.create_pool(
            dsn(),
            min_size=POOL_MIN,
            max_size=POOL_MAX,
            timeout=10,
            server_settings={"application_name": "custsync-floor", "timezone": "UTC"},
        )

    async def close_pool(app: Litestar) -> None:
        await app.state.pool.close()

    app = Litestar(
        route_handlers=[create_customer, get_customer, list_customers, health],
        on_startup=[open_pool],
        on_shutdown=[close_pool],
        openapi_config=None,
    )
    app.state.api_token = token
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()
    if not 1 <= args.port <= 65535 or not 1 <= args.workers <= 64:
        parser.error("--port 1..65535, --workers 1..64")
    dsn()  # fail here, not in every worker, when DATABASE_URL is missing
    uvicorn.run(
        "bench.floor_app:create_app",
        factory=True,
        host=HOST,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        **uvicorn_options(),
    )


if __name__ == "__main__":
    main()
