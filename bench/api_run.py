"""The API's throughput, path by path, against same-run baselines (run it through bench/api, which
provisions the services and wrk first): one `custsync api` on PostgreSQL and Kafka, loaded by wrk
(`-t2 -c32`) in interleaved rounds (A B A B), so every ratio compares figures taken under the same
load on this shared machine:

- POST /api/v1/customers and GET /api/v1/customers/{id} against pgbench's single-row INSERT on the
  same PostgreSQL (the database's floor);
- signed webhooks (POST /api/v1/webhooks/stripe, every body a new event) against GET /health of the
  same process (the framework's floor).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import stripe

from tests.support.infra import migrate, recreate_database, reset_topics
from tests.support.processes import Processes, base_env, wait_for_health
from tests.support.stripe_server import StripeServer, free_port

SECRET = "whsec_bench"
TOKEN = "bench-api-token"
MAX_SECONDS = 120  # any one wrk or pgbench run

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

INSERT = "INSERT INTO bench_rows (name, email) VALUES ('Bench', 'bench@example.com');\n"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="per wrk/pgbench run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--webhook-events", type=int, default=60_000, help="distinct signed events (more than one round sends)")
    return parser.parse_args()


def wrk(url: str, script: Path, seconds: int, connections: int) -> tuple[float, float, int]:
    """Requests/s, p99 latency (ms) and non-2xx answers of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + MAX_SECONDS, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, float(p99.group(1)) * scale, int(errors.group(1)) if errors else 0


def pgbench(dsn: str, script: Path, seconds: int, connections: int) -> float:
    out = subprocess.run(
        ["pgbench", "-n", "-f", str(script), f"-c{connections}", "-j2", f"-T{seconds}", dsn],
        capture_output=True, text=True, timeout=seconds + MAX_SECONDS, check=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def signed_events(path: Path, count: int) -> None:
    now = int(time.time())
    with path.open("w") as out:
        for n in range(count):
            body = ('{"id": "evt_bench%07d", "object": "event", "type": "customer.updated", "created": %d, '
                    '"data": {"object": {"id": "cus_bench%07d", "object": "customer", "name": "Customer %d", '
                    '"email": null, "metadata": {}}}}') % (n, now, n, n)
            out.write(f"{stripe.WebhookSignature.generate_signature_header(body, SECRET)}\t{body}\n")


async def main(args: argparse.Namespace) -> None:
    kafka = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    database_url = await recreate_database(os.environ["TEST_DATABASE_URL"], "custsync_bench_api")
    migrate(database_url, kafka)
    await reset_topics(kafka, partitions=6)
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    subprocess.run(["psql", "-q", dsn, "-c", "CREATE TABLE bench_rows (id bigserial PRIMARY KEY, name text, email text)"],
                   check=True, capture_output=True)
    work = Path(tempfile.mkdtemp(prefix="custsync-bench-api-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with StripeServer() as server:
        env = {**base_env(), "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka, "STRIPE_SECRET_KEY": "sk_test_bench",
               "STRIPE_API_BASE": server.url, "STRIPE_WEBHOOK_SECRET": SECRET, "API_TOKEN": TOKEN, "LOG_LEVEL": "WARNING"}
        processes = Processes(env, work)
        processes.start("api", "--port", str(port))
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                await wait_for_health(http)
                for n in range(200):  # the rows GET reads, and a warm process
                    assert (await http.post("/api/v1/customers", json={"name": f"Seed {n}", "email": None})).status_code == 201
            events = work / "events.tsv"
            signed_events(events, args.webhook_events)
            scripts = {}
            for name, text in (("create", CREATE), ("get", GET), ("webhooks", WEBHOOKS), ("health", "")):
                scripts[name] = work / f"{name}.lua"
                scripts[name].write_text(text % {"token": TOKEN, "ids": 200, "file": events} if text else "")
            insert = work / "insert.sql"
            insert.write_text(INSERT)
            print(f"custsync API throughput: one `custsync api` on PostgreSQL + Kafka, wrk -t2 -c{args.connections}, "
                  f"{args.seconds} s per run, {args.rounds} interleaved rounds, {os.cpu_count()} cores (shared)")
            rows: dict[str, list[tuple[float, float, int]]] = {}
            for r in range(1, args.rounds + 1):
                for name, run in (
                    ("pgbench INSERT (floor)", lambda: (pgbench(dsn, insert, args.seconds, args.connections), 0.0, 0)),
                    ("POST /api/v1/customers", lambda: wrk(url, scripts["create"], args.seconds, args.connections)),
                    ("GET /api/v1/customers/{id}", lambda: wrk(url, scripts["get"], args.seconds, args.connections)),
                    ("GET /health (floor)", lambda: wrk(f"{url}/health", scripts["health"], args.seconds, args.connections)),
                    ("POST /api/v1/webhooks/stripe", lambda: wrk(url, scripts["webhooks"], args.seconds, args.connections)),
                ):
                    rows.setdefault(name, []).append(run())
                    rate, p99, errors = rows[name][-1]
                    print(f"  round {r} {name:30s} {rate:9,.0f}/s" + (f"   p99 {p99:7.1f} ms   non-2xx {errors}" if p99 else ""))
        finally:
            processes.stop_all()
    best = {name: max(rate for rate, _, _ in runs) for name, runs in rows.items()}
    print("summary (best round of each)")
    print(f"  creates / pgbench INSERT        x{best['POST /api/v1/customers'] / best['pgbench INSERT (floor)']:.3f}")
    print(f"  webhooks / GET /health          x{best['POST /api/v1/webhooks/stripe'] / best['GET /health (floor)']:.3f}")
    print(f"  get-by-id / GET /health         x{best['GET /api/v1/customers/{id}'] / best['GET /health (floor)']:.3f}")


if __name__ == "__main__":
    asyncio.run(main(arguments()))
