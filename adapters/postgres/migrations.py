"""Schema migrations with Alembic, driven from code: no alembic.ini, and the scripts ship inside
this package, so ``custsync migrate`` works from an installed wheel as well as from a checkout."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.errors import is_refused, is_unavailable, refused, unavailable
from application.errors import StorageUnavailable

SCRIPT_LOCATION = Path(__file__).with_name("alembic")


class SchemaNotMigrated(RuntimeError):
    """The database lacks the schema this code expects; refuse to start rather than fail later."""

    def __init__(self, url: URL, current: tuple[str, ...], expected: tuple[str, ...]) -> None:
        self.current, self.expected = current, expected
        where = f"{url.host}:{url.port}/{url.database}" if url.port else f"{url.host}/{url.database}"
        super().__init__(f"the database at {where} is not migrated: run `custsync migrate`")


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if database_url is not None:
        # The value goes through ConfigParser interpolation: a '%' in a password must be doubled.
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@functools.cache  # the scripts ship with the code: read once, not on every readiness probe
def head_revisions() -> tuple[str, ...]:
    return tuple(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))


def upgrade(database_url: str) -> None:
    """Migrate the database to the newest schema (synchronous: for the CLI, outside any event loop).
    StorageUnavailable (one line, no driver trace) when it cannot be reached or refuses us."""
    try:
        command.upgrade(alembic_config(database_url), "head")
    except Exception as exc:
        url = make_url(database_url)
        where = f"{url.host}:{url.port}/{url.database}" if url.port else f"{url.host}/{url.database}"
        if is_refused(exc):
            raise refused(exc, where) from exc
        if is_unavailable(exc):
            raise StorageUnavailable(f"cannot migrate the database at {where}: {unavailable(exc)}") from exc
        raise


async def upgrade_engine(engine: AsyncEngine) -> None:
    """``upgrade`` for callers already inside an event loop (tests, an embedded runner)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_on)


def _upgrade_on(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def ensure_migrated(engine: AsyncEngine) -> None:
    """Raise SchemaNotMigrated unless the database is exactly at the head revision, and
    StorageUnavailable (one line, no driver trace) while it cannot be reached."""
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(lambda c: tuple(sorted(MigrationContext.configure(c).get_current_heads())))
    except Exception as exc:
        where = f"{engine.url.host}:{engine.url.port}" if engine.url.port else str(engine.url.host)
        if is_refused(exc):
            raise refused(exc, f"{where}/{engine.url.database}") from exc
        if is_unavailable(exc):
            raise StorageUnavailable(f"cannot reach the database at {where}: {unavailable(exc)}") from exc
        raise
    expected = head_revisions()
    if current != expected:
        raise SchemaNotMigrated(engine.url, current, expected)
