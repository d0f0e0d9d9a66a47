"""Set-up of the real services for integration tests and benchmarks: a database of one's own,
migrated by `custsync migrate`, and freshly created sync topics."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from adapters.kafka.topics import ensure_topics
from adapters.postgres.engine import create_engine
from adapters.postgres.tables import ALL_TABLES
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC, dead_letter_topic
from tests.support.processes import Processes, base_env

SYNC_TOPICS = [OUTBOUND_TOPIC, INBOUND_TOPIC, dead_letter_topic(OUTBOUND_TOPIC), dead_letter_topic(INBOUND_TOPIC)]


async def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create database ``name`` next to ``admin_url``'s; returns its SQLAlchemy URL."""
    admin = make_url(admin_url)
    conn = await asyncpg.connect(admin.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin.set(database=name).render_as_string(hide_password=False)


def migrate(database_url: str, kafka: str) -> None:
    Processes({**base_env(), "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka}, log_dir=None).run("migrate")


async def truncate(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {', '.join(t.name for t in ALL_TABLES)} RESTART IDENTITY"))
    finally:
        await engine.dispose()


async def reset_topics(kafka: str, partitions: int = 3) -> None:
    """Delete the sync topics (and their history) and create them anew."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka, client_id="custsync-tests")
    await admin.start()
    try:
        existing = set(await admin.list_topics()) & set(SYNC_TOPICS)
        if existing:
            await admin.delete_topics(sorted(existing))
        for _ in range(100):  # deletion is asynchronous on the broker
            if not set(await admin.list_topics()) & set(SYNC_TOPICS):
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    await ensure_topics(kafka, partitions, topics=SYNC_TOPICS)
