"""The reconcile benchmark's driver (run it through bench/reconcile, which provisions the services first).

N customers linked and in sync on both sides (PostgreSQL bulk-loaded, the Stripe-compatible test server
filled directly), a planted drift, then A/B interleaved: A only pages through Stripe's customer list with
the same SDK client and rate limiter (the floor STRIPE_MAX_RPS sets), B is `custsync reconcile --dry-run`.
Both are real processes. At the end one run fixes the drift, a worker (the real relay and consumer, on an
in-memory broker: the shared Kafka topics stay untouched) carries the fixes out, and a last run must find
nothing to do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from domain.ownership import new_installation_id
from tests.support.infra import migrate, recreate_database
from tests.support.processes import CUSTSYNC, base_env
from tests.support.stripe_server import StripeServer

DATABASE = "custsync_reconcile_bench"
KEY = "sk_test_reconcile_bench"
PAGE = 100  # Stripe's largest list page
MAX_PAGES = 1_000_000  # bounds the floor's loop (100 M customers)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000, help="linked pairs, in sync")
    parser.add_argument("--drift", type=float, default=0.001, help="share of --customers planted as drift")
    parser.add_argument("--max-rps", type=float, default=100, help="STRIPE_MAX_RPS of both processes")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds at --customers")
    parser.add_argument("--small", type=int, default=10_000, help="the size peak memory is compared at (0: skip)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile", type=Path, help="run each B under `py-spy record` (pip install py-spy), flame data in this directory"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds any one process may take")
    parser.add_argument("--mode", choices=["bench", "floor", "drain"], default="bench", help=argparse.SUPPRESS)
    return parser.parse_args()


# -- set-up ---------------------------------------------------------------------------------------------
@dataclass
class Plant:
    customers: int
    differs: list[str] = field(default_factory=list)  # Stripe ids whose name was changed in Stripe
    only_there: list[str] = field(default_factory=list)  # Stripe ids linked to nothing
    only_here: list[int] = field(default_factory=list)  # catalog ids never pushed

    @property
    def drift(self) -> int:
        return len(self.differs) + len(self.only_there) + len(self.only_here)

    def subjects(self) -> set[tuple[str, str]]:
        return (
            {("differs", f"external:{x}") for x in self.differs}
            | {("only_there", f"external:{x}") for x in self.only_there}
            | {("only_here", f"customer:{c}") for c in self.only_here}
        )

    def counts(self) -> dict[str, int]:
        return {
            "external_listed": self.customers + len(self.only_there),
            "in_sync": self.customers - len(self.differs),
            "differs": len(self.differs),
            "only_there": len(self.only_there),
            "only_here": len(self.only_here),
        }


def asyncpg_url(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def populate(database_url: str, server: StripeServer, n: int, drift: float, rng: random.Random) -> Plant:
    """Linked pairs exactly as the worker leaves them (catalog row, mapping with its baseline, a
    Stripe customer tagged by our create), then the drift, spread at random over ids and list."""
    planted = round(n * drift)
    plant = Plant(n)
    total = n + planted // 3
    only_here = set(rng.sample(range(1, total + 1), planted // 3))
    installation, at = new_installation_id(), datetime.now(UTC) - timedelta(days=1)
    customers, mappings, records = [], [], []
    for cid in range(1, total + 1):
        name, email = f"Customer {cid}", f"customer{cid}@example.test"
        customers.append((cid, name, email, 1, at, at, False, at, at))
        if cid in only_here:
            continue
        xid = f"cus_bench{cid:010d}"
        mappings.append((cid, "stripe", xid, name, email, 1, at))
        metadata = {
            "internal_id": str(cid),
            "custsync_installation": installation,
            "custsync_create": f"custsync-{installation}-create-{rng.getrandbits(128):032x}",
        }
        records.append(
            {
                "id": xid,
                "object": "customer",
                "created": int(at.timestamp()),
                "livemode": False,
                "name": name,
                "email": email,
                "metadata": metadata,
            }
        )
    for record in rng.sample(records, planted - 2 * (planted // 3)):
        record["name"] += " (renamed in Stripe)"
        plant.differs.append(record["id"])
    for j in range(planted // 3):
        xid = f"cus_stripeonly{j:06d}"
        records.append(
            {
                "id": xid,
                "object": "customer",
                "created": int(at.timestamp()),
                "livemode": False,
                "name": f"Stripe only {j}",
                "email": f"stripe-only{j}@example.test",
                "metadata": {},
            }
        )
        plant.only_there.append(xid)
    plant.only_here = sorted(only_here)
    rng.shuffle(records)
    for record in records:  # filled behind the API's back
        server.stripe.put(record)
    conn = await asyncpg.connect(asyncpg_url(database_url))
    try:
        await conn.copy_records_to_table(
            "customers",
            records=customers,
            columns=[
                "id",
                "name",
                "email",
                "version",
                "created_at",
                "updated_at",
                "deleted",
                "name_changed_at",
                "email_changed_at",
            ],
        )
        await conn.copy_records_to_table(
            "external_mappings",
            records=mappings,
            columns=["customer_id", "system", "external_id", "synced_name", "synced_email", "synced_version", "synced_at"],
        )
        await conn.execute("SELECT setval(pg_get_serial_sequence('customers', 'id'), $1)", total)
        await conn.execute("INSERT INTO installation (singleton, id, created_at) VALUES (true, $1, $2)", installation, at)
        # Bound beforehand, so that every run sends the same requests (a first start would also re-fetch one customer).
        await conn.execute(
            "INSERT INTO account_bindings (system, account_id, mode, bound_at) VALUES ('stripe', $1, 'test', $2)",
            server.stripe.account_id,
            at,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return plant


async def sql(database_url: str, *statements: str) -> list:
    conn = await asyncpg.connect(asyncpg_url(database_url))
    try:
        return [await conn.fetchval(s) for s in statements]
    finally:
        await conn.close()


# -- one measured process -------------------------------------------------------------------------------
@dataclass
class Measured:
    seconds: float
    cpu: float  # user + system seconds of this very child (wait4)
    peak_rss_mb: float  # the largest VmHWM read (every 50 ms): ru_maxrss would count the bench's own RSS copied by fork
    requests: int  # Stripe requests the server answered meanwhile
    first_request: float  # seconds from the start to the first one (sampled every 50 ms)
    last_request: float
    span_cpu: float  # CPU seconds it used between the two (from /proc/<pid>/stat, same samples)
    server_cpu: float  # CPU seconds of this process meanwhile: the Stripe server's thread, mostly
    stdout: str
    stderr: str

    def json(self) -> dict:
        # The report is one JSON line (py-spy, under --profile, adds lines of its own around it).
        return json.loads(next(line for line in reversed(self.stdout.splitlines()) if line.startswith("{")))

    @property
    def span(self) -> float:
        """From its first Stripe request to its last: the listing (and, for B, the comparing)."""
        return self.last_request - self.first_request


async def measure(argv: list[str], env: dict[str, str], server: StripeServer, timeout: float, log: Path) -> Measured:
    before, own = len(server.requests), resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryFile() as out, log.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)

        def reap() -> tuple[float, int, resource.struct_rusage]:
            _, status, usage = os.wait4(proc.pid, 0)
            return time.perf_counter(), status, usage

        # Reaped by wait4 alone (never Popen.poll, which could reap it first): until then its pid is ours to signal.
        reaped = asyncio.ensure_future(asyncio.to_thread(reap))
        first = last = first_cpu = last_cpu = peak = 0.0
        seen = before
        try:
            while not reaped.done():
                await asyncio.wait({reaped}, timeout=0.05)
                now, count = time.perf_counter() - started, len(server.requests)
                peak = max(peak, high_water_mb(proc.pid))
                if count > seen and (cpu := cpu_seconds(proc.pid)) is not None:
                    if not first:
                        first, first_cpu = now, cpu
                    last, last_cpu, seen = now, cpu, count
                if now > timeout and not reaped.done():
                    os.kill(proc.pid, signal.SIGKILL)
        finally:
            if not reaped.done():
                os.kill(proc.pid, signal.SIGKILL)
            ended, status, usage = await reaped
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode()
    stderr = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[-4:])} exited {proc.returncode} after {ended - started:.1f}s:\n{stderr[-3000:]}")
    now = resource.getrusage(resource.RUSAGE_SELF)
    server_cpu = now.ru_utime + now.ru_stime - own.ru_utime - own.ru_stime
    return Measured(
        ended - started,
        usage.ru_utime + usage.ru_stime,
        peak,
        len(server.requests) - before,
        first,
        last,
        last_cpu - first_cpu,
        server_cpu,
        stdout,
        stderr,
    )


def high_water_mb(pid: int) -> float:
    """The peak RSS of a running process so far (0 once it has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0.0)


def cpu_seconds(pid: int) -> float | None:
    """User + system time of a running (not yet reaped) process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def floor_argv() -> list[str]:
    return [sys.executable, "-m", "bench.reconcile_run", "--mode", "floor"]


def reconcile_argv(*options: str) -> list[str]:
    return [CUSTSYNC, "reconcile", "--json", "--no-progress", *options]


def checked(b: Measured, plant: Plant, *, fixing: bool) -> dict:
    """The run is a new one, done, and found exactly the planted drift."""
    report = b.json()
    run, findings = report["run"], report["findings"]
    assert "resuming" not in b.stderr, b.stderr[-2000:]
    assert run["status"] == "done" and run["dry_run"] is not fixing, run
    counts = {k: run["counts"].get(k, 0) for k in plant.counts()}
    assert counts == plant.counts(), f"counts {counts} != planted {plant.counts()}"
    found = {(f["kind"], f["subject"]) for f in findings}
    assert found == plant.subjects(), f"findings differ from the plant: {sorted(found ^ plant.subjects())[:10]}"
    if fixing:
        assert run["counts"].get("fix_applied", 0) == plant.drift, run["counts"]
    return run


def line(label: str, m: Measured, pages: int, extra: str = "") -> str:
    return (
        f"  {label:<20} {m.seconds:7.2f} s  CPU {m.cpu:6.2f} s  {m.requests:6,d} requests  peak RSS {m.peak_rss_mb:6.1f} MB"
        f"  1st request at {m.first_request:4.2f} s, then {m.span:6.2f} s of requests ({m.span / pages * 1000:5.1f} ms/page)"
        f"{extra}"
    )


# -- the benchmark ----------------------------------------------------------------------------------------
async def prepared(args: argparse.Namespace, n: int, server: StripeServer) -> tuple[str, Plant, dict[str, str]]:
    kafka = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    database_url = await recreate_database(os.environ["TEST_DATABASE_URL"], DATABASE)
    migrate(database_url, kafka)
    started = time.perf_counter()
    plant = await populate(database_url, server, n, args.drift, random.Random(args.seed))
    print(
        f"  set-up: {n:,d} linked pairs + drift {plant.drift} ({len(plant.differs)} differ, {len(plant.only_there)} only in "
        f"Stripe, {len(plant.only_here)} only in the catalog) loaded in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    env = {
        **base_env(),
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "STRIPE_API_BASE": server.url,
        "STRIPE_SECRET_KEY": KEY,
        "STRIPE_MAX_RPS": f"{args.max_rps:g}",
        "API_TOKEN": "reconcile-bench-token",
        "LOG_LEVEL": "WARNING",
    }
    return database_url, plant, env


async def fresh(database_url: str) -> None:
    """Each run starts from the same tables: earlier runs (what they found and saw) are removed,
    and the tables vacuumed and analyzed as autovacuum would leave them between runs."""
    conn = await asyncpg.connect(asyncpg_url(database_url))
    try:
        await conn.execute("DELETE FROM reconcile_runs")  # findings and seen records cascade
        await conn.execute("VACUUM ANALYZE reconcile_runs, reconcile_findings, reconcile_seen")
    finally:
        await conn.close()


def pages_of(plant: Plant) -> int:
    return -(-plant.counts()["external_listed"] // PAGE)


async def ab(
    args: argparse.Namespace, rounds: int, server: StripeServer, env: dict, plant: Plant, database_url: str
) -> list[tuple[Measured, Measured]]:
    n, pages, results = plant.customers, pages_of(plant), []
    for r in range(1, rounds + 1):
        await fresh(database_url)
        a = await measure(floor_argv(), env, server, args.timeout, args.logs / f"{n}-round{r}-A.log")
        assert a.json()["records"] == plant.counts()["external_listed"], a.json()
        print(line(f"round {r} A list only", a, pages), flush=True)
        argv = reconcile_argv("--dry-run")
        if args.profile:  # by hand only: py-spy's sampling costs the process some time of its own
            args.profile.mkdir(parents=True, exist_ok=True)
            argv = [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--format",
                "raw",
                "--rate",
                "250",
                "-o",
                str(args.profile / f"{n}-round{r}-B.txt"),
                "--",
                *argv,
            ]
        b = await measure(argv, env, server, args.timeout, args.logs / f"{n}-round{r}-B.log")
        checked(b, plant, fixing=False)
        print(line(f"round {r} B reconcile", b, pages, f"   B/A x{b.seconds / a.seconds:.2f}"), flush=True)
        results.append((a, b))
    print(f"  findings as planted: {', '.join(f'{k} {v:,d}' for k, v in plant.counts().items())}", flush=True)
    return results


async def fix_and_check(args: argparse.Namespace, server: StripeServer, env: dict, plant: Plant, database_url: str) -> None:
    pages = pages_of(plant)
    await fresh(database_url)
    fix = await measure(reconcile_argv(), env, server, args.timeout, args.logs / "fixing-run.log")
    run = checked(fix, plant, fixing=True)
    print(line("fixing run", fix, pages, f"   {run['counts'].get('fix_applied', 0)} fixes applied"), flush=True)
    started, before = time.perf_counter(), len(server.requests)
    log = args.logs / "worker.log"
    with log.open("wb") as err:
        worker = subprocess.Popen(
            [sys.executable, "-m", "bench.reconcile_run", "--mode", "drain"], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            settled = await drained(database_url, server, worker, deadline=time.monotonic() + 300)
        finally:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
    assert settled, f"the worker did not carry the fixes out within 300 s:\n{log.read_text()[-3000:]}"
    print(
        f"  worker                {time.perf_counter() - started:6.2f} s  {len(server.requests) - before:,d} requests: "
        "exports created and linked, imports tagged (relay + consumer on an in-memory broker)",
        flush=True,
    )
    await fresh(database_url)
    check = await measure(reconcile_argv(), env, server, args.timeout, args.logs / "check-run.log")
    report = check.json()
    counts = report["run"]["counts"]
    assert report["run"]["status"] == "done" and report["findings"] == [], report["findings"][:5]
    assert counts.get("in_sync") == plant.customers + len(plant.only_there) + len(plant.only_here), counts
    print(line("second run", check, pages_of(plant), f"   nothing to do: {counts['in_sync']:,d} in sync, 0 findings"), flush=True)


async def drained(database_url: str, server: StripeServer, worker: subprocess.Popen, deadline: float) -> bool:
    """Twice in a row: no pending outbox row or sync record, every catalog customer linked, every
    Stripe customer tagged."""
    calm = 0
    while time.monotonic() < deadline and worker.poll() is None:
        pending, unsettled, unlinked = await sql(
            database_url,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            "SELECT count(*) FROM sync_records WHERE status IN ('pending', 'retrying')",
            "SELECT count(*) FROM customers c WHERE NOT deleted AND NOT EXISTS "
            "(SELECT 1 FROM external_mappings m WHERE m.customer_id = c.id AND m.system = 'stripe')",
        )
        untagged = sum("internal_id" not in c["metadata"] for c in list(server.stripe.customers.values()))
        calm = calm + 1 if pending == unsettled == unlinked == untagged == 0 else 0
        if calm == 2:
            return True
        await asyncio.sleep(0.5)
    return False


def limits(label: str, m: Measured, pages: int, pacing: float) -> str:
    """Where a path's time per page goes while it lists, and so what bounds it."""
    per_page = m.span / pages
    parts = {"its own CPU": m.span_cpu / pages, "the Stripe server": m.server_cpu / m.requests}
    parts["the rest (waiting: round trips, a free core)"] = max(0.0, per_page - sum(parts.values()))
    bound = "the rate limit" if per_page < pacing * 1.1 else max(parts, key=parts.__getitem__)
    return (
        f"    {label}: {per_page * 1000:5.1f} ms a page against {pacing * 1000:.1f} ms of pacing: "
        + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in parts.items())
        + f"; bound by {bound}"
    )


def summary(args: argparse.Namespace, sizes: list[tuple[Plant, list[tuple[Measured, Measured]]]]) -> None:
    print("\nsummary")
    pacing = 1 / args.max_rps
    for plant, results in sizes:
        pages = pages_of(plant)
        ratios = [b.seconds / a.seconds for a, b in results]
        floors = [b.seconds / (pages * pacing) for _, b in results]  # the issue's goal: <= 1.2 x the pages' floor
        print(
            f"  {plant.customers:,d} customers, {pages:,d} pages (rate floor {pages * pacing:.1f} s): "
            f"B/floor {', '.join(f'x{r:.2f}' for r in floors)}: goal x1.2 {'met' if max(floors) <= 1.2 else 'missed'}; "
            f"B/A {', '.join(f'x{r:.2f}' for r in ratios)} (A, the list alone, x{max(a.seconds for a, _ in results) / (pages * pacing):.2f} the floor)"
        )
        a, b = results[-1]
        print(
            f"    B's time: start-up {b.first_request:.2f} s (imports, schema check, Kafka producer, account check), "
            f"list + compare {b.span:.2f} s, then {b.seconds - b.last_request:.2f} s (the other three phases, findings, exit)"
        )
        print(limits("A", a, pages, pacing))
        print(limits("B", b, pages, pacing))
    peaks = {plant.customers: max(b.peak_rss_mb for _, b in results) for plant, results in sizes}
    if len(peaks) == 2:
        (small, s), (big, g) = sorted(peaks.items())
        print(
            f"  peak RSS of the reconcile: {s:.1f} MB at {small:,d} customers, {g:.1f} MB at {big:,d} "
            f"(x{g / s:.2f} for x{big / small:.0f} the customers)"
        )


async def main(args: argparse.Namespace) -> int:
    args.logs = Path(tempfile.mkdtemp(prefix="custsync-reconcile-bench-"))
    print(
        f"custsync reconcile benchmark: STRIPE_MAX_RPS {args.max_rps:g}, drift {args.drift:.2%}, seed {args.seed}, "
        f"{os.cpu_count()} cores (shared), logs in {args.logs}",
        flush=True,
    )
    sizes = ([(args.small, 1, False)] if args.small else []) + [(args.customers, args.rounds, True)]
    measured = []
    for n, rounds, last in sizes:
        print(f"\n{n:,d} customers", flush=True)
        with StripeServer() as server:
            database_url, plant, env = await prepared(args, n, server)
            measured.append((plant, await ab(args, rounds, server, env, plant, database_url)))
            if last:
                await fix_and_check(args, server, env, plant, database_url)
    summary(args, measured)
    return 0


# -- the two helper processes -------------------------------------------------------------------------------
async def floor() -> None:
    """A: every page of Stripe's customer list, through the service's own integration as the
    container wires it (client, limiter, the list's raw JSON path)."""
    from entrypoints.container import build_container
    from entrypoints.settings import load_settings

    stripe = build_container(load_settings()).stripe()
    started, pages, records, cursor = time.perf_counter(), 0, 0, None
    for pages in range(1, MAX_PAGES + 1):  # noqa: B007 - read after the loop: how many pages it took
        page = await stripe.list_customers(limit=PAGE, cursor=cursor)
        records += len(page.customers)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    print(json.dumps({"pages": pages, "records": records, "seconds": time.perf_counter() - started}))


async def drain() -> None:
    """The worker's relay and consumer on an in-memory broker (until SIGTERM): the fixes reach
    Stripe through the real sync paths without touching the shared Kafka topics."""
    import msgspec

    from entrypoints.container import build_container
    from entrypoints.logs import configure
    from entrypoints.runtime import consumer_task, relay_task, run_process
    from entrypoints.settings import load_settings

    settings = msgspec.structs.replace(load_settings(), kafka_bootstrap_servers="memory://")
    configure(settings.log_level)
    container = build_container(settings)
    await run_process(container, relay_task(container), consumer_task(container), bind="wait")


if __name__ == "__main__":
    options = arguments()
    if options.mode == "floor":
        asyncio.run(floor())
    elif options.mode == "drain":
        asyncio.run(drain())
    else:
        sys.exit(asyncio.run(main(options)))
