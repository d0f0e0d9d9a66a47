"""One contract suite, run against every implementation of the storage ports, so that the
in-memory fakes cannot drift from the real database."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from adapters.memory.database import InMemoryDatabase
from adapters.postgres.engine import create_engine
from adapters.postgres.migrations import upgrade_engine
from adapters.postgres.tables import ALL_TABLES
from adapters.postgres.unit_of_work import SqlAlchemyUnitOfWorkFactory
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://custsync:custsync@127.0.0.1:25432/custsync_test"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test database, rebuilt from scratch by the migrations once per session.

    Unreachable means failed, never skipped: CI must not go green without having run these.
    """
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    asyncio.run(_rebuild(url))
    return url


async def _rebuild(url: str) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        try:
            await (await engine.connect()).close()
        except (OSError, TimeoutError, DBAPIError) as exc:
            where = make_url(url).render_as_string(hide_password=True)
            pytest.fail(
                f"cannot connect to PostgreSQL at {where} ({exc}): is it running? `scripts/services.sh up`", pytrace=False
            )
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await upgrade_engine(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def pg_engine(postgres_url: str):
    """An engine on the migrated test database, every table emptied (and its ids restarted)."""
    engine = create_engine(postgres_url, pool_size=5)
    await _empty(engine)
    yield engine
    await engine.dispose()


async def _empty(engine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {', '.join(t.name for t in ALL_TABLES)} RESTART IDENTITY"))


@pytest.fixture(params=["memory", "postgres"])
def uow_factory(request):
    if request.param == "memory":
        return InMemoryDatabase().unit_of_work
    if request.param == "postgres":
        return SqlAlchemyUnitOfWorkFactory(request.getfixturevalue("pg_engine"))
    raise AssertionError(request.param)  # pragma: no cover


@pytest.fixture(params=["memory", "postgres"])
def storage_url(request) -> str:
    """``memory://`` or the migrated test database (requested here: its set-up cannot run in a loop)."""
    return "memory://" if request.param == "memory" else request.getfixturevalue("postgres_url")


@pytest.fixture
async def api_system(storage_url: str) -> AsyncIterator[EmbeddedSystem]:
    """The whole service in one process (``EmbeddedSystem``) on the in-memory storage or on the
    test database, emptied (the in-memory broker and Stripe stand-in either way): HTTP behaviour
    that depends on what storage accepts is pinned on both."""
    system = EmbeddedSystem(Settings(database_url=storage_url, stripe_webhook_secret=WEBHOOK_SECRET))
    if storage_url == "memory://":
        yield system
        return
    engine = system.container.engine()
    try:
        await _empty(engine)
        yield system
    finally:
        await engine.dispose()


@pytest.fixture
async def api(api_system: EmbeddedSystem) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the production app over ``api_system``."""
    async with asgi_client(create_app(api_system.container)) as client:
        yield client


def asgi_client(app) -> httpx.AsyncClient:
    """An HTTP client calling ``app`` in the test's own event loop: Litestar's AsyncTestClient runs
    the app in a thread of its own, where the test's pooled asyncpg connections cannot be used."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
