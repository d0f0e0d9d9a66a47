"""The account-wide request budget's ledger in PostgreSQL (see ``adapters.budget``).

One row per budget holds the time of its next free slot. Reserving ``n`` slots is one statement:
move that time ``n/rate`` seconds on (from now, if the budget sat idle) and return where the
reservation starts. The row lock serializes every worker's reservations, so no two slots ever
overlap, and the times are the database's (``clock_timestamp()``): the workers' own clocks
never decide who may call when.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.budget import Lease, slot_step
from adapters.postgres.errors import is_unavailable, unavailable

_RESERVE = text("""
    INSERT INTO rate_budgets AS b (name, next_free_at) VALUES (:name, clock_timestamp() + :span * interval '1 second')
    ON CONFLICT (name) DO UPDATE
        SET next_free_at = GREATEST(b.next_free_at, clock_timestamp()) + :span * interval '1 second'
    RETURNING next_free_at - :span * interval '1 second' AS first, clock_timestamp() AS now
""")


class PostgresLedger:
    """``await ledger(n)``: the next ``n`` slots of budget ``name`` at ``rate`` per second."""

    def __init__(self, engine: AsyncEngine, name: str, rate: float) -> None:
        self._engine, self._name, self._rate = engine, name, rate

    async def __call__(self, count: int) -> Lease:
        try:
            async with self._engine.connect() as connection:
                row = (
                    await connection.execute(
                        _RESERVE, {"name": self._name, "span": (count * slot_step(self._rate)).total_seconds()}
                    )
                ).one()
                await connection.commit()
        except Exception as exc:
            if is_unavailable(exc):
                raise unavailable(exc) from exc
            raise
        return Lease(first=row.first, count=count, now=row.now)
