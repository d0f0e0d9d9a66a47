"""The worker's throughput and end-to-end latency (run it through bench/throughput, which provisions
the services first): real `custsync worker` processes on PostgreSQL and Kafka, pushing to the
Stripe-compatible HTTP test server, which adds ``--latency`` to every call and refuses calls over
Stripe's rate limit with 429 like Stripe does.

1. **Zero latency, events/s per worker**: a backlog of ``--changes`` updates (one per customer, so
   nothing coalesces) drained by one worker handling one delivery at a time (WORKER_CONCURRENCY=1:
   the old serial worker, the same-run baseline A), by one worker at the default concurrency (B), and
   by one at the default concurrency under CONFLICT_POLICY=internal_wins (C: one Stripe call per
   update instead of two), interleaved A B C A B C.
2. **Budget-bound**: the same backlog at ``--latency`` (150 ms) per Stripe call, STRIPE_MAX_RPS and the
   server's rate limit both ``--max-rps`` (100): sustained Stripe calls/s against the budget, 429s
   (self-inflicted: over the budget) counted; one worker, then two (sharing the budget).
3. **End to end**: updates committed at a steady ``--e2e-rates`` (50/s, 200/s) with budget to spare;
   the time from each commit to the Stripe request that carries it (p50/p99).
4. **Metrics on** (the operability issue): part 1's B as it ships (every delivery and Stripe call
   counted and logged, no listener) against M: the same with its operations listener (METRICS_PORT,
   the status sampled at the default METRICS_INTERVAL, 15 s), scraped every 5 s by the bench; S, a
   stress: sampled and scraped every second; and J, B with LOG_FORMAT=json. Interleaved B M S J,
   then J S M B (each drain leaves rows behind and later drains run slower: a fixed order would
   favour the first side); and
   what the per-event instrumentation (its counters, histograms and three JSON log lines) costs,
   timed in this process, as a share of B's CPU per event.

Each backlog is written while the relay is held back (the bench holds the relays' advisory lock), the
workers join their group, then the lock is released: the clock starts with every change in the
outbox, and a group's rebalance is not part of the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from sqlalchemy import text

from adapters.clock import SystemClock
from adapters.postgres.engine import create_engine
from adapters.postgres.repositories import RELAY_LOCK
from adapters.postgres.unit_of_work import SqlAlchemyUnitOfWorkFactory
from application.commands import CreateCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.update import patch_customer
from tests.support.infra import migrate, recreate_database, reset_topics
from tests.support.processes import Processes, base_env
from tests.support.stripe_server import StripeServer, free_port

MAX_DRAIN_SECONDS = 900  # any one drain
PARTITIONS = 6


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=5000, help="customers, and changes per backlog")
    parser.add_argument("--latency", type=float, default=0.150, help="seconds added to every Stripe call (part 2)")
    parser.add_argument("--max-rps", type=float, default=100.0, help="STRIPE_MAX_RPS and the server's rate limit (part 2)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of part 1")
    parser.add_argument("--e2e-rates", default="50,200", help="updates/s of part 3")
    parser.add_argument("--e2e-seconds", type=float, default=15.0)
    parser.add_argument("--parts", default="1,2,3,4")
    return parser.parse_args()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, args: argparse.Namespace, database_url: str, server: StripeServer, processes: Processes) -> None:
        self.args, self.server, self.processes = args, server, processes
        self.engine = create_engine(database_url, pool_size=20)
        self.uow = SqlAlchemyUnitOfWorkFactory(self.engine)
        self.clock = SystemClock()
        self.ids: list[int] = []
        self.external: dict[int, str] = {}
        self.generation = 0

    async def gathered(self, work, count: int, width: int = 16) -> None:
        for start in range(0, count, width):
            await asyncio.gather(*(work(i) for i in range(start, min(count, start + width))))

    async def seed(self) -> float:
        """``--changes`` customers, created by one worker with a budget nobody reaches: creates/s."""

        async def create(i: int) -> None:
            self.ids.append((await create_customer(CreateCustomer(f"c{i}", None), self.uow(), self.clock)).id)

        async with self.relays_held():
            await self.gathered(create, self.args.changes)
            workers = await self.start_workers(1, STRIPE_MAX_RPS="10000")
        began = time.monotonic()
        await self.until(lambda: self.count("SELECT count(*) FROM external_mappings"), self.args.changes, "the seed")
        took = time.monotonic() - began
        self.stop(workers)
        async with self.engine.connect() as c:
            self.external = dict((await c.execute(text("SELECT customer_id, external_id FROM external_mappings"))).all())
        return self.args.changes / took

    async def count(self, sql: str) -> int:
        async with self.engine.connect() as c:
            return int(await c.scalar(text(sql)))

    async def until(self, progress, goal: int, what: str) -> None:
        deadline = time.monotonic() + MAX_DRAIN_SECONDS
        while time.monotonic() < deadline:
            if await progress() >= goal:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{what} did not finish within {MAX_DRAIN_SECONDS}s")

    @contextlib.asynccontextmanager
    async def relays_held(self) -> AsyncIterator[None]:
        """Hold the lock the relays take turns on (``RELAY_LOCK``): changes stay in the outbox."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": RELAY_LOCK})
            try:
                yield
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RELAY_LOCK})

    async def start_workers(self, count: int, **env: str) -> list:
        workers = [self.processes.start("worker", name="worker", **env) for _ in range(count)]

        # Joined: every member has its partitions in both of its groups (sync.inbound's, and
        # sync.outbound's for Stripe: application.sync.groups).
        def assigned() -> bool:
            return all(Processes.log(w).count("partitions assigned") >= 2 for w in workers)

        deadline = time.monotonic() + 60
        while not assigned():
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise RuntimeError(
                    "the workers did not join their group:\n" + "\n".join(Processes.log(w)[-2000:] for w in workers)
                )
            await asyncio.sleep(0.1)
        await asyncio.sleep(4 if count > 1 else 1)  # a second member's rebalance settles
        return workers

    def stop(self, workers: list) -> float:
        """Stop them; returns the CPU seconds they used (their whole life, start-up included)."""
        cpu = sum(cpu_seconds(w.pid) for w in workers)
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
        return cpu

    async def backlog(self) -> str:
        """One update per customer, committed while the relays are held back; returns its tag."""
        self.generation += 1
        tag = f"g{self.generation}"

        async def update(i: int) -> None:
            await patch_customer(PatchCustomer(customer_id=self.ids[i], changes={"name": f"{tag}-{i}"}), self.uow(), self.clock)

        await self.gathered(update, len(self.ids))
        return tag

    def pushed(self, tag: str) -> int:
        customers = self.server.stripe.customers
        return sum(1 for ext in self.external.values() if str(customers[ext].get("name", "")).startswith(tag + "-"))

    async def drain(self, workers: int, scrape: str | None = None, every: float = 1.0, **env: str) -> dict[str, float]:
        async with self.relays_held():
            tag = await self.backlog()
            running = await self.start_workers(workers, **env)
            calls, limited = len(self.server.timed), self.server.rate_limited
            began = time.monotonic()

        async def progress() -> int:
            return self.pushed(tag)

        scraping = asyncio.create_task(scraped_every(scrape, every)) if scrape else None
        await self.until(progress, len(self.ids), f"the drain of {tag}")
        took = time.monotonic() - began
        if scraping is not None:
            scraping.cancel()
            scrapes = await asyncio.gather(scraping, return_exceptions=True)
            del scrapes
        cpu = self.stop(running)
        stamps = [t for t, *_ in self.server.timed[calls:] if t <= began + took]
        return {
            "cpu ms/event": 1000 * cpu / len(self.ids),
            "events/s": len(self.ids) / took,
            "seconds": took,
            "calls": len(stamps),
            "calls/s": len(stamps) / took,
            "calls/event": len(stamps) / len(self.ids),
            "429s": self.server.rate_limited - limited,
        }

    async def e2e(self, rate: float) -> dict[str, float]:
        """Updates at ``rate``/s for ``--e2e-seconds``, each to another customer; commit -> Stripe request."""
        running = await self.start_workers(1, STRIPE_MAX_RPS="10000")
        self.generation += 1
        tag = f"e{self.generation}"
        committed: dict[str, float] = {}
        count = int(rate * self.args.e2e_seconds)
        calls = len(self.server.timed)
        began = time.monotonic()

        async def update(n: int) -> None:
            name = f"{tag}-{n}"
            customer = self.ids[n % len(self.ids)]
            await patch_customer(PatchCustomer(customer_id=customer, changes={"name": name}), self.uow(), self.clock)
            committed[name] = time.monotonic()

        tasks = []
        for n in range(count):  # paced by the schedule, not by how long each commit takes
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(update(n)))
        await asyncio.gather(*tasks)
        last = {self.ids[n % len(self.ids)]: f"{tag}-{n}" for n in range(count)}  # what each customer ends with

        def sent_for() -> dict[str, float]:
            return {
                p["name"]: t for t, m, _, p in self.server.timed[calls:] if m == "POST" and str(p.get("name", "")).startswith(tag)
            }

        async def progress() -> int:
            arrived = sent_for()
            return sum(1 for name in last.values() if name in arrived)

        await self.until(progress, len(last), f"the e2e run at {rate}/s")
        self.stop(running)
        arrived = sent_for()
        # A customer changed twice before its first change was pushed sends only the second
        # (coalesced): its first has no request of its own and no latency.
        latencies = sorted((arrived[name] - at) * 1000 for name, at in committed.items() if name in arrived)
        offered = count / (max(committed.values()) - began)
        return {"offered/s": offered, "p50": statistics.median(latencies), "p99": latencies[int(0.99 * (len(latencies) - 1))]}


async def scraped_every(url: str, seconds: float) -> None:
    """Prometheus's part: GET /metrics every ``seconds`` (bounded: a drain lasts MAX_DRAIN_SECONDS at most)."""
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(int(MAX_DRAIN_SECONDS / seconds)):
            with contextlib.suppress(httpx.HTTPError):
                (await http.get(url)).raise_for_status()
            await asyncio.sleep(seconds)


def instrumentation_us_per_event(events: int = 20_000) -> float:
    """What one update costs in counting and logging, as the worker does it under latest_wins: a
    delivery counted (with its latency), two Stripe calls counted (method, status class, duration,
    the budget's wait) and three JSON log lines (two calls, one delivery) with their bound fields,
    formatted and written to a null stream. Microseconds per event, in this process."""
    import io
    import logging

    from adapters.prometheus import PrometheusMetrics, new_registry
    from application.correlation import bound
    from domain.sync import Direction, Handled, Outcome
    from entrypoints.logs import WithContext, formatter

    metrics = PrometheusMetrics(new_registry())
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(formatter("json"))
    handler.addFilter(WithContext())
    logger = logging.getLogger("bench.instrumentation")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handled = Handled("stripe", Direction.OUTBOUND, Outcome.SYNCED, 0.02)
    began = time.perf_counter()
    for n in range(events):
        with bound(
            correlation_id="5f0c3b0e9d2a4c1f8e7b6a5d4c3b2a19",
            event_id="9b1e8f2a-0c3d-4e5f-8a9b-0c1d2e3f4a5b",
            customer_id=n,
            topic="sync.outbound",
            partition=3,
            offset=n,
        ):
            for method in ("customers.retrieve", "customers.update"):
                metrics.rate_limit_waited("stripe", 0.0)
                metrics.external_request("stripe", method, 200, 0.004)
                logger.info(
                    "stripe %s %s -> %s in %.0f ms (Request-Id %s)",
                    method,
                    "cus_Q1",
                    200,
                    4.0,
                    "req_8Hk2",
                    extra={"stripe_request_id": "req_8Hk2", "external_id": "cus_Q1", "status": 200},
                )
            metrics.handled("sync.outbound", handled)
            logger.info(
                "%s %s %s%s",
                "outbound",
                "stripe",
                "synced",
                " (20 ms after the change)",
                extra={"system": "stripe", "outcome": "synced"},
            )
        if n % 1000 == 0:
            handler.stream = io.StringIO()  # bounded memory
    return (time.perf_counter() - began) * 1e6 / events


async def main(args: argparse.Namespace) -> None:
    kafka = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    database_url = await recreate_database(os.environ["TEST_DATABASE_URL"], "custsync_bench_throughput")
    migrate(database_url, kafka)
    await reset_topics(kafka, partitions=PARTITIONS)
    work = Path(tempfile.mkdtemp(prefix="custsync-bench-throughput-"))
    parts = {int(p) for p in args.parts.split(",")}
    with StripeServer() as server:
        env = {
            **base_env(),
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "STRIPE_SECRET_KEY": "sk_test_bench",
            "STRIPE_API_BASE": server.url,
            "STRIPE_WEBHOOK_SECRET": "whsec_bench",
            "CATCHUP_INTERVAL": "0",
            "LOG_LEVEL": "INFO",
            "KAFKA_PARTITIONS": str(PARTITIONS),
        }
        processes = Processes(env, work)
        bench = Bench(args, database_url, server, processes)
        try:
            print(
                f"custsync worker throughput: {args.changes} customers on PostgreSQL + Kafka ({PARTITIONS} partitions), "
                f"Stripe-compatible HTTP server, {os.cpu_count()} cores (shared); logs in {work}"
            )
            creates = await bench.seed()
            print(f"  seed: {args.changes} creates by one worker at zero latency: {creates:,.0f}/s")
            if 1 in parts:
                print(
                    "1. zero latency, one worker: A = WORKER_CONCURRENCY=1 (serial), B = default, C = default and "
                    "CONFLICT_POLICY=internal_wins (an update written without a read); interleaved A B C A B C"
                )
                rows: dict[str, list[dict[str, float]]] = {"A": [], "B": [], "C": []}
                for r in range(1, args.rounds + 1):
                    for side, env_ in (
                        ("A", {"WORKER_CONCURRENCY": "1"}),
                        ("B", {}),
                        ("C", {"CONFLICT_POLICY": "internal_wins"}),
                    ):
                        row = await bench.drain(1, STRIPE_MAX_RPS="10000", **env_)
                        rows[side].append(row)
                        print(
                            f"  round {r} {side}: {row['events/s']:8,.0f} events/s  {row['calls/event']:.2f} Stripe calls/event  "
                            f"worker CPU {row['cpu ms/event']:.1f} ms/event, start-up included  ({row['seconds']:.1f} s)"
                        )
                a = statistics.median(r["events/s"] for r in rows["A"])
                b = statistics.median(r["events/s"] for r in rows["B"])
                c = statistics.median(r["events/s"] for r in rows["C"])
                print(f"  B/A: x{b / a:.2f}  (median of rounds: {b:,.0f} vs {a:,.0f} events/s)")
                print(f"  C/A: x{c / a:.2f}  (median of rounds: {c:,.0f} vs {a:,.0f} events/s)")
            if 2 in parts:
                server.latency, server.rate_limit = args.latency, args.max_rps
                print(
                    f"2. {args.latency * 1000:.0f} ms per Stripe call, STRIPE_MAX_RPS={args.max_rps:g}, "
                    f"server rate limit {args.max_rps:g}/s: sustained calls/s against the budget"
                )
                for workers in (1, 2):
                    row = await bench.drain(workers, STRIPE_MAX_RPS=f"{args.max_rps:g}")
                    print(
                        f"  {workers} worker(s): {row['calls/s']:6.1f} calls/s = x{row['calls/s'] / args.max_rps:.2f} of the budget, "
                        f"{row['events/s']:6.1f} events/s, {row['calls/event']:.2f} calls/event, 429s {row['429s']}  ({row['seconds']:.1f} s)"
                    )
                server.latency, server.rate_limit = 0.0, None
            if 3 in parts:
                print("3. end to end, one worker, zero latency, budget to spare: commit -> Stripe request")
                for rate in (float(r) for r in args.e2e_rates.split(",")):
                    row = await bench.e2e(rate)
                    print(
                        f"  {rate:5.0f}/s (offered {row['offered/s']:5.0f}/s): p50 {row['p50']:7.1f} ms   p99 {row['p99']:7.1f} ms"
                    )
            if 4 in parts:
                print(
                    "4. metrics on: B = as shipped (counted and logged, no listener); M = B with its operations listener "
                    "(status sampled every 15 s, the default), scraped every 5 s; S = M sampled and scraped every 1 s "
                    "(a stress); J = B with LOG_FORMAT=json; zero latency, one worker, rounds B M S J and J S M B in turn"
                )
                sides: dict[str, list[dict[str, float]]] = {"B": [], "M": [], "S": [], "J": []}
                port = free_port()
                url = f"http://127.0.0.1:{port}/metrics"
                for r in range(1, args.rounds + 1):
                    for side in ("B", "M", "S", "J") if r % 2 else ("J", "S", "M", "B"):
                        if side in ("B", "J"):
                            row = await bench.drain(1, STRIPE_MAX_RPS="10000", LOG_FORMAT="json" if side == "J" else "text")
                        else:
                            interval, every = ("15", 5.0) if side == "M" else ("1", 1.0)
                            row = await bench.drain(
                                1,
                                scrape=url,
                                every=every,
                                STRIPE_MAX_RPS="10000",
                                METRICS_PORT=str(port),
                                METRICS_INTERVAL=interval,
                            )
                        sides[side].append(row)
                        print(
                            f"  round {r} {side}: {row['events/s']:8,.0f} events/s  worker CPU {row['cpu ms/event']:.2f} ms/event  "
                            f"({row['seconds']:.1f} s)"
                        )
                b = statistics.median(r["events/s"] for r in sides["B"])
                b_cpu = statistics.median(r["cpu ms/event"] for r in sides["B"])
                for side in ("M", "S", "J"):
                    m = statistics.median(r["events/s"] for r in sides[side])
                    m_cpu = statistics.median(r["cpu ms/event"] for r in sides[side])
                    print(
                        f"  {side}/B: x{m / b:.3f} events/s ({m:,.0f} vs {b:,.0f}), x{m_cpu / b_cpu:.3f} worker CPU per event "
                        f"({m_cpu:.2f} vs {b_cpu:.2f} ms)"
                    )
                cost = statistics.median(instrumentation_us_per_event() for _ in range(3))
                print(
                    f"  instrumentation per event (counters, histograms, 3 JSON log lines): {cost:.1f} us "
                    f"= {cost / (b_cpu * 10):.2f}% of B's {b_cpu:.2f} ms of CPU per event"
                )
        finally:
            processes.stop_all()
            await bench.engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(arguments()))
