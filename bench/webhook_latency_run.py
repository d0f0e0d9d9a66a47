"""Times signed Stripe webhooks through a real `custsync api` (verify, dedupe check, publish to
Kafka, answer) against GET /health on the same server in the same run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import stripe

from tests.support.infra import migrate, recreate_database, reset_topics
from tests.support.processes import Processes, base_env, wait_for_health
from tests.support.stripe_server import free_port

SECRET = "whsec_bench"


def event(n: int) -> bytes:
    customer = {"id": f"cus_bench{n:06d}", "object": "customer", "name": f"Customer {n}", "email": None, "metadata": {}}
    return json.dumps(
        {
            "id": f"evt_bench{n:06d}",
            "object": "event",
            "type": "customer.updated",
            "created": int(time.time()),
            "data": {"object": customer},
        }
    ).encode()


async def timed(http: httpx.AsyncClient, method: str, url: str, **kwargs) -> float:
    started = time.perf_counter()
    response = await http.request(method, url, **kwargs)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return elapsed


def summary(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1], ordered[-1]


async def main(requests: int) -> None:
    kafka = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    database_url = await recreate_database(os.environ["TEST_DATABASE_URL"], "custsync_bench")
    migrate(database_url, kafka)
    await reset_topics(kafka, partitions=6)
    port = free_port()
    env = {
        **base_env(),
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
    }
    processes = Processes(env, Path(tempfile.mkdtemp(prefix="custsync-bench-")))
    processes.start("api", "--port", str(port))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await wait_for_health(http)
            for _ in range(50):  # warm-up: connections, JIT-free but caches and the Kafka producer
                await http.get("/health")
            health, hooks = [], []
            for n in range(requests):  # interleaved, so both see the same machine load
                health.append(await timed(http, "GET", "/health"))
                body = event(n)
                header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET)
                hooks.append(
                    await timed(
                        http,
                        "POST",
                        "/api/v1/webhooks/stripe",
                        content=body,
                        headers={"stripe-signature": header, "content-type": "application/json"},
                    )
                )
    finally:
        processes.stop_all()
    h, w = summary(health), summary(hooks)
    print(f"custsync webhook latency, {requests} sequential requests each, one `custsync api` on PostgreSQL + Kafka")
    print(f"  GET /health (baseline)      p50 {h[0] * 1000:6.2f} ms   p99 {h[1] * 1000:6.2f} ms   max {h[2] * 1000:6.2f} ms")
    print(f"  POST /api/v1/webhooks/...   p50 {w[0] * 1000:6.2f} ms   p99 {w[1] * 1000:6.2f} ms   max {w[2] * 1000:6.2f} ms")
    print(f"  webhook / baseline          p50 x{w[0] / h[0]:.1f}   p99 x{w[1] / h[1]:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    asyncio.run(main(parser.parse_args().requests))
