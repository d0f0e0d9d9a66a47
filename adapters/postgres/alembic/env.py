"""Alembic's environment, driven from adapters.postgres.migrations (there is no alembic.ini).

Two ways in: with a ``connection`` in ``config.attributes`` (handed over by an async caller through
``run_sync``), or with ``sqlalchemy.url`` set, in which case this opens its own async engine.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from adapters.postgres.tables import metadata

config = context.config


def run_with(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_with_own_engine(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
            await connection.commit()
    finally:
        await engine.dispose()


def run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def configured_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:  # adapters.postgres.migrations sets it whenever it hands over no connection
        raise RuntimeError("alembic: neither a connection nor sqlalchemy.url was given")
    return url


if context.is_offline_mode():
    run_offline(configured_url())
elif (shared := config.attributes.get("connection")) is not None:
    run_with(shared)
else:
    asyncio.run(run_with_own_engine(configured_url()))
