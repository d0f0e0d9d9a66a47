"""The one async engine (a connection pool) per process; the composition root owns its lifetime."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

APPLICATION_NAME = "custsync"


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """An engine on asyncpg (``postgresql+asyncpg://...``); call ``await engine.dispose()`` at shutdown."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        # Absorb bursts without holding idle connections for good.
        max_overflow=pool_size,
        # Fail a request quickly when the pool is exhausted instead of queueing behind a stuck one.
        pool_timeout=10,
        # A connection dropped by a restart, a failover or an idle-killing proxy is replaced
        # before use rather than failing the unit of work that drew it.
        pool_pre_ping=True,
        pool_recycle=30 * 60,
        connect_args={
            "timeout": 10,
            # Names our sessions in pg_stat_activity; UTC so that server-side now() and any text
            # rendering of timestamps agree with the domain's UTC datetimes.
            "server_settings": {"application_name": APPLICATION_NAME, "timezone": "UTC"},
        },
    )
