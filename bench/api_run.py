"""The API's throughput, path by path, against same-run floors (run it through bench/api, which
provisions the services and wrk first). wrk (`-t2 -c32`) loads, in interleaved rounds (A B A B),
so that every ratio compares figures taken under the same load on this shared machine:

- one `custsync api` on PostgreSQL and Kafka (`--workers N` when N > 1), and for creates and
  webhooks a `custsync api --workers 2` (`--compare-workers`) beside it, interleaved too;
- the framework-and-driver floor: bench/floor_app.py, a bare Litestar app on a raw asyncpg pool
  serving the same catalog routes with the same SQL, in its own process(es) on the same database,
  same uvicorn options, same number of workers;
- pgbench's single-row INSERT on the same PostgreSQL (the database's floor).

Paths: POST /api/v1/customers (create), GET /api/v1/customers/{id} (get) and GET /api/v1/customers
(list, the first page of 50), each against custsync then the floor app; signed webhooks
(POST /api/v1/webhooks/stripe, every body a new event) against GET /health of the same custsync.

Goals (the issue's): creates >= 1,000/s in one process and >= 0.6 of the floor app's; webhooks
>= 0.4 x GET /health; `--workers 2` >= 1.6 x one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import stripe

from tests.support.infra import migrate, recreate_database, reset_topics
from tests.support.processes import CUSTSYNC, Processes, base_env, wait_for_health
from tests.support.stripe_server import StripeServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_bench"
TOKEN = "bench-api-token"
MAX_SECONDS = 120  # any one wrk or pgbench run, beyond its own duration
SEED = 200  # customers created before the rounds: what get-by-id and list read

CREATE = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/api/v1/customers", nil, '{"name": "Bench ' .. n .. '", "email": "bench' .. n .. '@example.com"}')
end
"""

GET = """
wrk.headers["Authorization"] = "Bearer %(token)s"
local n = 0
request = function()
  n = n %% %(ids)d + 1
  return wrk.format("GET", "/api/v1/customers/" .. n)
end
"""

LIST = """
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function()
  return wrk.format("GET", "/api/v1/customers")
end
"""

WEBHOOKS = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local lines = {}
for line in io.lines("%(file)s") do lines[#lines + 1] = line end
local n = 0
request = function()
  n = n %% #lines + 1
  local tab = lines[n]:find("\\t")
  wrk.headers["Stripe-Signature"] = lines[n]:sub(1, tab - 1)
  return wrk.format(nil, "/api/v1/webhooks/stripe", nil, lines[n]:sub(tab + 1))
end
"""

HEALTH = """
request = function()
  return wrk.format("GET", "/health")
end
"""

INSERT = "INSERT INTO bench_rows (name, email) VALUES ('Bench', 'bench@example.com');\n"

# Path name -> (label, wrk script); "insert" is pgbench's.
PATHS = {
    "insert": ("pgbench INSERT (db floor)", None),
    "create": ("POST /api/v1/customers", CREATE),
    "get": ("GET /api/v1/customers/{id}", GET),
    "list": ("GET /api/v1/customers", LIST),
    "health": ("GET /health", HEALTH),
    "webhooks": ("POST /api/v1/webhooks/stripe", WEBHOOKS),
}
ON_FLOOR = ("create", "get", "list")  # also run against the floor app
NEEDS = {"create": "insert", "webhooks": "health"}  # a path brings the floor its ratio needs


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="per wrk/pgbench run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="processes of `custsync api` and of the floor app")
    parser.add_argument(
        "--compare-workers",
        type=int,
        default=2,
        help="also run creates and webhooks against a `custsync api --workers N`, interleaved (1: not)",
    )
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help=f"a comma-separated subset of {', '.join(PATHS)} (create adds insert, webhooks adds health)",
    )
    parser.add_argument("--webhook-events", type=int, default=60_000, help="distinct signed events (more than one round sends)")
    args = parser.parse_args()
    chosen = {p.strip() for p in args.paths.split(",") if p.strip()}
    if not chosen or chosen - set(PATHS):
        parser.error(f"--paths: choose among {', '.join(PATHS)} (got {args.paths!r})")
    chosen |= {NEEDS[p] for p in chosen if p in NEEDS}
    args.paths = [p for p in PATHS if p in chosen]  # in running order
    for name in ("seconds", "rounds", "connections", "workers", "compare_workers", "webhook_events"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.seconds > 600 or args.rounds > 20 or max(args.workers, args.compare_workers) > 16 or args.connections > 1000:
        parser.error("at most --seconds 600, --rounds 20, --workers 16, --compare-workers 16, --connections 1000")
    if max(args.workers, args.compare_workers) > 1:
        usage = subprocess.run([CUSTSYNC, "api", "--help"], capture_output=True, text=True, timeout=60).stdout
        if "--workers" not in usage:
            parser.error("this `custsync api` has no --workers option yet")
    return args


def wrk(url: str, script: Path, seconds: int, connections: int) -> tuple[float, float, int]:
    """Requests/s, p99 latency (ms) and non-2xx answers of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + MAX_SECONDS,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, float(p99.group(1)) * scale, int(errors.group(1)) if errors else 0


def pgbench(dsn: str, script: Path, seconds: int, connections: int) -> float:
    out = subprocess.run(
        ["pgbench", "-n", "-f", str(script), f"-c{connections}", "-j2", f"-T{seconds}", dsn],
        capture_output=True,
        text=True,
        timeout=seconds + MAX_SECONDS,
        check=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def signed_events(path: Path, count: int) -> None:
    now = int(time.time())
    with path.open("w") as out:
        for n in range(count):
            body = (
                '{"id": "evt_bench%07d", "object": "event", "type": "customer.updated", "created": %d, '
                '"data": {"object": {"id": "cus_bench%07d", "object": "customer", "name": "Customer %d", '
                '"email": null, "metadata": {}}}}'
            ) % (n, now, n, n)
            out.write(f"{stripe.WebhookSignature.generate_signature_header(body, SECRET)}\t{body}\n")


@contextlib.contextmanager
def floor_app(env: dict[str, str], port: int, workers: int, log: Path) -> Iterator[subprocess.Popen]:
    """bench/floor_app.py on 127.0.0.1:``port``, in a session of its own (its uvicorn workers
    with it), stopped with SIGTERM -- SIGKILL to that session if it does not stop."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.floor_app", "--port", str(port), "--workers", str(workers)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


async def warm_up(url: str, paths: list[str], *, seed: bool) -> None:
    """Seed the customers (through custsync) or just warm a server's pool and caches."""
    async with httpx.AsyncClient(base_url=url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        await wait_for_health(http)
        for n in range(SEED if seed else 20):
            answer = await http.post("/api/v1/customers", json={"name": f"Seed {n}", "email": None})
            assert answer.status_code == 201, answer.text
        for n in range(1, 51):
            if "get" in paths:
                assert (await http.get(f"/api/v1/customers/{n}")).status_code == 200
            if "list" in paths and n % 5 == 0:
                assert (await http.get("/api/v1/customers")).status_code == 200


async def main(args: argparse.Namespace) -> None:
    kafka = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    database_url = await recreate_database(os.environ["TEST_DATABASE_URL"], "custsync_bench_api")
    migrate(database_url, kafka)
    await reset_topics(kafka, partitions=6)
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    subprocess.run(
        ["psql", "-q", dsn, "-c", "CREATE TABLE bench_rows (id bigserial PRIMARY KEY, name text, email text)"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    work = Path(tempfile.mkdtemp(prefix="custsync-bench-api-"))
    port, floor_port = free_port(), free_port()
    url, floor_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{floor_port}"
    on_floor = [p for p in args.paths if p in ON_FLOOR]
    workers = ["--workers", str(args.workers)] if args.workers > 1 else []  # works with a custsync without the option
    scripts = {}
    for name in args.paths:
        text = PATHS[name][1]
        if text is not None:
            scripts[name] = work / f"{name}.lua"
            scripts[name].write_text(text % {"token": TOKEN, "ids": SEED, "file": work / "events.tsv"})
    if "webhooks" in args.paths:
        signed_events(work / "events.tsv", args.webhook_events)
    insert = work / "insert.sql"
    insert.write_text(INSERT)
    rows: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    with StripeServer() as server, contextlib.ExitStack() as stack:
        env = {
            **base_env(),
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "STRIPE_SECRET_KEY": "sk_test_bench",
            "STRIPE_API_BASE": server.url,
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "API_TOKEN": TOKEN,
            "LOG_LEVEL": "WARNING",
        }
        processes = Processes(env, work)
        stack.callback(processes.stop_all)
        processes.start("api", "--port", str(port), *workers)
        await warm_up(url, args.paths, seed=True)
        many = f"custsync-w{args.compare_workers}"
        many_url = f"http://127.0.0.1:{free_port()}"
        if args.compare_workers > 1:
            processes.start("api", "--port", many_url.rsplit(":", 1)[1], "--workers", str(args.compare_workers))
            await warm_up(many_url, args.paths, seed=False)
        if on_floor:
            floor_env = {**base_env(), "DATABASE_URL": database_url, "API_TOKEN": TOKEN, "LOG_LEVEL": "WARNING"}
            stack.enter_context(floor_app(floor_env, floor_port, args.workers, work / "floor.log"))
            await warm_up(floor_url, args.paths, seed=False)
        print(
            f"custsync API throughput: `custsync api` ({args.workers} process{'es' if args.workers > 1 else ''}) on PostgreSQL "
            f"+ Kafka vs the floor app (bare Litestar + asyncpg, same workers), wrk -t2 -c{args.connections}, "
            f"{args.seconds} s per run, {args.rounds} interleaved round{'s' if args.rounds > 1 else ''}, {os.cpu_count()} cores (shared); logs in {work}"
        )
        runs: list[tuple[str, str, Callable[[], tuple[float, float, int]]]] = []
        for name in args.paths:
            if name == "insert":
                runs.append((name, "pgbench", lambda: (pgbench(dsn, insert, args.seconds, args.connections), 0.0, 0)))
                continue
            for server_name, base in (("custsync", url), ("floor", floor_url), (many, many_url)):
                if server_name == many and (args.compare_workers == 1 or name not in ("create", "webhooks")):
                    continue
                if server_name != "floor" or name in ON_FLOOR:
                    script = scripts[name]
                    target = f"{base}/api/v1/customers" if name == "list" else base
                    runs.append((name, server_name, lambda t=target, s=script: wrk(t, s, args.seconds, args.connections)))
        for r in range(1, args.rounds + 1):
            for name, server_name, run in runs:
                rows.setdefault((name, server_name), []).append(run())
                rate, p99, errors = rows[name, server_name][-1]
                print(
                    f"  round {r} {PATHS[name][0]:30s} {server_name:9s} {rate:9,.0f}/s"
                    + (f"   p99 {p99:7.1f} ms   non-2xx {errors}" if server_name != "pgbench" else "")
                )
    summary(args, {key: max(rate for rate, _, _ in results) for key, results in rows.items()})


def instrumentation_us_per_request(requests: int = 50_000) -> tuple[float, float]:
    """What the operability issue added to every request, timed in this process: the correlation
    middleware (an id read or made, bound, sent back) around an ASGI app that does nothing, less
    the app alone; and a webhook's counter. Microseconds per request: (middleware, webhook counter)."""
    from adapters.prometheus import PrometheusMetrics, new_registry
    from entrypoints.http.correlation import correlation_middleware

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def sent(message) -> None:
        return None

    scope = {"type": "http", "headers": [(b"host", b"127.0.0.1"), (b"x-request-id", b"5f0c3b0e9d2a4c1f")]}

    def timed(handler) -> float:
        # Neither coroutine ever suspends: each is run to its end by one send(), no event loop.
        began = time.perf_counter()
        for _ in range(requests):
            with contextlib.suppress(StopIteration):
                handler(scope, None, sent).send(None)
        return time.perf_counter() - began

    bare = min(timed(app) for _ in range(3))
    wrapped = min(timed(correlation_middleware(app)) for _ in range(3))
    metrics = PrometheusMetrics(new_registry())
    began = time.perf_counter()
    for _ in range(requests):
        metrics.webhook("stripe", "accepted")
    counter = time.perf_counter() - began
    return (wrapped - bare) * 1e6 / requests, counter * 1e6 / requests


def summary(args: argparse.Namespace, best: dict[tuple[str, str], float]) -> None:
    print("summary (best round of each)")

    def ratio(label: str, a: tuple[str, str], b: tuple[str, str], goal: float | None = None) -> None:
        if a in best and b in best:
            verdict = f"   goal >= {goal}: {'met' if best[a] / best[b] >= goal else 'MISSED'}" if goal else ""
            print(f"  {label:36s} {best[a]:9,.0f}/s / {best[b]:9,.0f}/s = x{best[a] / best[b]:.3f}{verdict}")

    ratio("creates custsync / floor app", ("create", "custsync"), ("create", "floor"), 0.6)
    ratio("get-by-id custsync / floor app", ("get", "custsync"), ("get", "floor"))
    ratio("list custsync / floor app", ("list", "custsync"), ("list", "floor"))
    ratio("creates custsync / pgbench INSERT", ("create", "custsync"), ("insert", "pgbench"))
    ratio("creates floor app / pgbench INSERT", ("create", "floor"), ("insert", "pgbench"))
    ratio("webhooks / GET /health", ("webhooks", "custsync"), ("health", "custsync"), 0.4)
    ratio("get-by-id / GET /health", ("get", "custsync"), ("health", "custsync"))
    many = f"custsync-w{args.compare_workers}"
    ratio(f"creates --workers {args.compare_workers} / one process", ("create", many), ("create", "custsync"), 1.6)
    ratio(f"webhooks --workers {args.compare_workers} / one process", ("webhooks", many), ("webhooks", "custsync"))
    if ("create", "custsync") in best:
        creates = best["create", "custsync"]
        goal = f"goal >= 1,000/s in one process: {'met' if creates >= 1000 else 'MISSED'}" if args.workers == 1 else ""
        print(f"  {'creates custsync':36s} {creates:9,.0f}/s   {goal}")
    middleware, counter = instrumentation_us_per_request()
    print(
        f"  instrumentation per request (operability issue): correlation middleware {middleware:.1f} us, a webhook's "
        f"counter {counter:.1f} us"
    )
    for path in ("create", "webhooks"):
        if (path, "custsync") in best:
            spent = 1e6 / best[path, "custsync"]  # us per request of one process at its best rate
            extra = middleware + (counter if path == "webhooks" else 0.0)
            print(f"    {path}: {extra:.1f} us of {spent:.0f} us per request = {100 * extra / spent:.1f}%")


if __name__ == "__main__":
    asyncio.run(main(arguments()))
