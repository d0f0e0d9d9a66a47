"""Retention's pruning on PostgreSQL (run it through bench/retention, which provisions the services):
``--rows`` old rows in each of the outbox (published), the inbox and the sync records (succeeded),
each with as many recent ones, then batches of 1,000 deleted through ``SqlAlchemyRetention`` (A)
against the floor (B): a ``DELETE`` of 1,000 rows by a primary-key range of the same table, on
rows inserted alike -- interleaved A B A B, each in its own transaction, as the worker commits
each batch. What it shows: a batch costs about what deleting its rows does, whatever the table's
size, because each is chosen through an index in the order the rows became old."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from adapters.postgres.engine import create_engine
from adapters.postgres.retention import SqlAlchemyRetention
from tests.support.infra import migrate, recreate_database

BATCH = 1000
NOW = datetime(2026, 11, 1, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=30)

SEED = {
    "outbox": """
        INSERT INTO outbox (event_id, customer_id, payload, created_at, published_at)
        SELECT 'e' || g, g, '{"data": null}'::jsonb, CAST(:old AS timestamptz), CASE WHEN g % 2 = 0 THEN CAST(:old AS timestamptz) ELSE CAST(:recent AS timestamptz) END
        FROM generate_series(1, :n) g""",
    "inbox": """
        INSERT INTO inbox (system, event_id, processed_at)
        SELECT 'stripe', 'evt_' || g, CASE WHEN g % 2 = 0 THEN CAST(:old AS timestamptz) ELSE CAST(:recent AS timestamptz) END FROM generate_series(1, :n) g""",
    "sync_records": """
        INSERT INTO sync_records (event_id, system, direction, customer_id, operation, status, attempts, created_at, updated_at)
        SELECT 'e' || g, 'stripe', 'outbound', g, 'update', 'succeeded', 1, CAST(:old AS timestamptz),
               CASE WHEN g % 2 = 0 THEN CAST(:old AS timestamptz) ELSE CAST(:recent AS timestamptz) END
        FROM generate_series(1, :n) g""",
}
# The floor: the same number of rows deleted by a range of the table's own key.
FLOOR = {
    "outbox": "DELETE FROM outbox WHERE position > :low AND position <= :low + :batch",
    "inbox": "DELETE FROM inbox WHERE system = 'stripe' AND event_id IN (SELECT 'evt_' || g FROM generate_series(:low + 1, :low + :batch) g)",
    "sync_records": "DELETE FROM sync_records WHERE id > :low AND id <= :low + :batch",
}
PRUNE = {
    "outbox": lambda r: r.prune_outbox(CUTOFF, BATCH),
    "inbox": lambda r: r.prune_inbox(CUTOFF, BATCH),
    "sync_records": lambda r: r.prune_sync_records(CUTOFF, BATCH),
}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="rows per table (half old, half recent)")
    parser.add_argument("--batches", type=int, default=5, help="interleaved batches of each side per table")
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    url = await recreate_database(os.environ["TEST_DATABASE_URL"], "custsync_bench_retention")
    migrate(url, os.environ["KAFKA_BOOTSTRAP_SERVERS"])
    engine = create_engine(url, pool_size=2)
    try:
        async with engine.begin() as c:
            for sql in SEED.values():
                await c.execute(text(sql), {"n": args.rows, "old": CUTOFF - timedelta(days=1), "recent": NOW})
            await c.execute(text("ANALYZE"))
        print(
            f"retention pruning: {args.rows:,} rows per table (half older than the retention), batches of {BATCH:,}, "
            f"PostgreSQL on {os.cpu_count()} shared cores; A = SqlAlchemyRetention, B = DELETE by key range; A B interleaved"
        )
        for table in SEED:
            a_ms, b_ms = [], []
            for n in range(args.batches):
                began = time.perf_counter()
                async with engine.begin() as c:
                    deleted = await PRUNE[table](SqlAlchemyRetention(c))
                a_ms.append((time.perf_counter() - began) * 1000)
                assert deleted == BATCH, (table, deleted)
                low = args.rows // 2 + n * BATCH  # a range of rows the prune leaves (the recent half's keys)
                began = time.perf_counter()
                async with engine.begin() as c:
                    await c.execute(text(FLOOR[table]), {"low": low, "batch": BATCH})
                b_ms.append((time.perf_counter() - began) * 1000)
            a, b = statistics.median(a_ms), statistics.median(b_ms)
            print(
                f"  {table:13s} A {a:6.1f} ms   B {b:6.1f} ms   A/B x{a / b:.2f}   (medians of {args.batches}; "
                f"A runs {', '.join(f'{x:.1f}' for x in a_ms)} ms)"
            )
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(arguments()))
