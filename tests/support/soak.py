"""The soak: real `custsync api` and `custsync worker` processes on PostgreSQL and Kafka, a
Stripe-compatible HTTP server that fails a fraction of calls, webhooks delivered one or more
times in shuffled order, workers SIGKILLed and restarted mid-stream, edits from both sides.
Then: wait for quiet and compare the catalog with Stripe, customer by customer.

Used small by tests/integration/test_soak.py (CI) and large by bench/soak.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

import httpx
from sqlalchemy import text

from adapters.postgres.engine import create_engine
from tests.support.processes import Processes, wait_for_health
from tests.support.stripe_server import StripeServer

NAMES = ["Ada", "Grace", "Linus", "Barbara", "Edsger", None]
EMAILS = ["ada@example.com", "grace@example.com", "linus@example.com", None]


@dataclass
class SoakReport:
    customers: int = 0
    operations: int = 0
    api_operations: int = 0
    stripe_operations: int = 0
    webhook_deliveries: int = 0
    worker_kills: int = 0
    stripe_calls: int = 0
    stripe_faults_injected: int = 0
    ops_seconds: float = 0.0
    converge_seconds: float | None = None
    dead_letters: int = 0
    divergences: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"customers created through the API   {self.customers}",
            f"operations (API / Stripe side)      {self.operations} ({self.api_operations} / {self.stripe_operations})",
            f"webhook deliveries (incl. repeats)  {self.webhook_deliveries}",
            f"workers SIGKILLed and restarted     {self.worker_kills}",
            f"Stripe API calls by the worker      {self.stripe_calls} ({self.stripe_faults_injected} answered 429/500)",
            f"time to run the operations          {self.ops_seconds:.1f} s",
            f"time to converge after the last op  {'never' if self.converge_seconds is None else f'{self.converge_seconds:.1f} s'}",
            f"dead letters                        {self.dead_letters}",
            f"divergences                         {len(self.divergences)}",
            *[f"  - {d}" for d in self.divergences[:50]],
        ]


class WebhookSender:
    """Stripe's side of webhook delivery: every event at least once, some twice, shuffled."""

    def __init__(self, server: StripeServer, api_url: str, secret: str, rng: random.Random, repeat: float = 0.3) -> None:
        self.server, self.url, self.secret, self.rng, self.repeat = server, f"{api_url}/api/v1/webhooks/stripe", secret, rng, repeat
        self.taken = 0
        self.pending: list[dict] = []
        self.deliveries = 0

    async def pump(self, http: httpx.AsyncClient, limit: int = 50) -> int:
        events = self.server.stripe.events  # appended to by the server thread; slicing is atomic
        self.pending += events[self.taken:]
        self.taken += len(events[self.taken:])
        sent = 0
        while self.pending and sent < limit:
            event = self.pending.pop(self.rng.randrange(len(self.pending)))
            payload, header = self.server.stripe.signed_event(event, self.secret)
            try:
                response = await http.post(self.url, content=payload, headers={"stripe-signature": header, "content-type": "application/json"})
                delivered = response.status_code == 200
            except httpx.TransportError:
                delivered = False
            if not delivered or self.rng.random() < self.repeat:
                self.pending.append(event)  # Stripe retries failures, and sometimes repeats successes
            self.deliveries += delivered
            sent += 1
        return sent


class Soak:
    def __init__(self, *, processes: Processes, server: StripeServer, api_url: str, database_url: str, secret: str,
                 customers: int, operations: int, workers: int = 2, kill_every: int = 0, seed: int = 7) -> None:
        self.processes, self.server, self.api_url, self.database_url = processes, server, api_url, database_url
        self.customers, self.operations, self.workers, self.kill_every = customers, operations, workers, kill_every
        self.rng = random.Random(seed)
        self.webhooks = WebhookSender(server, api_url, secret, self.rng)
        self.report = SoakReport()
        self.worker_procs: list = []

    async def run(self, converge_timeout: float = 120.0) -> SoakReport:
        self.processes.start("api", "--port", self.api_url.rsplit(":", 1)[1])
        self.worker_procs = [self.processes.start("worker") for _ in range(self.workers)]
        # One pool for every look at the database: convergence is polled four times a second.
        self.engine = create_engine(self.database_url, pool_size=1)
        try:
            auth = {"Authorization": f"Bearer {self.processes.env['API_TOKEN']}"}
            async with httpx.AsyncClient(base_url=self.api_url, timeout=30, headers=auth) as http:
                await wait_for_health(http)
                started = time.monotonic()
                ids = await self._create_customers(http)
                await self._operate(http, ids)
                self.report.ops_seconds = time.monotonic() - started
                settled = time.monotonic()
                if await self._converge(http, converge_timeout):
                    self.report.converge_seconds = time.monotonic() - settled
            async with self.engine.connect() as connection:
                self.report.dead_letters = (await connection.execute(text("SELECT count(*) FROM dead_letters"))).scalar_one()
        finally:
            await self.engine.dispose()
        self.report.webhook_deliveries = self.webhooks.deliveries
        self.report.stripe_calls = len(self.server.requests)
        self.report.stripe_faults_injected = self.server.faults
        return self.report

    async def _create_customers(self, http: httpx.AsyncClient) -> list[int]:
        ids = []
        for _ in range(self.customers):
            body = {"name": self.rng.choice(NAMES), "email": self.rng.choice(EMAILS)}
            ids.append((await http.post("/api/v1/customers", json=body)).json()["id"])
            self.report.customers += 1
            self.report.api_operations += 1
            self.report.operations += 1
            await self.webhooks.pump(http, limit=2)
        return ids

    async def _operate(self, http: httpx.AsyncClient, ids: list[int]) -> None:
        dashboard = httpx.AsyncClient(base_url=self.server.url, timeout=30, headers={"x-dashboard": "1", "authorization": "Bearer sk_test_dashboard"})
        try:
            for n in range(self.operations):
                if self.rng.random() < 0.5:
                    await self._api_edit(http, ids)
                    self.report.api_operations += 1
                else:
                    await self._stripe_edit(dashboard)
                    self.report.stripe_operations += 1
                self.report.operations += 1
                if n % 3 == 0:
                    await self.webhooks.pump(http, limit=5)
                if self.kill_every and n and n % self.kill_every == 0:
                    self._kill_a_worker()
        finally:
            await dashboard.aclose()

    async def _api_edit(self, http: httpx.AsyncClient, ids: list[int]) -> None:
        roll = self.rng.random()
        customer_id = self.rng.choice(ids)
        if roll < 0.1:
            await http.delete(f"/api/v1/customers/{customer_id}")
        elif roll < 0.2:
            ids.append((await http.post("/api/v1/customers", json={"name": self.rng.choice(NAMES)})).json()["id"])
        else:
            field = self.rng.choice(["name", "email"])
            value = self.rng.choice(NAMES if field == "name" else EMAILS)
            await http.patch(f"/api/v1/customers/{customer_id}", json={field: value})

    async def _stripe_edit(self, dashboard: httpx.AsyncClient) -> None:
        alive = list(self.server.stripe.customers)
        roll = self.rng.random()
        if roll < 0.1 or not alive:
            await dashboard.post("/v1/customers", data={"name": self.rng.choice(NAMES[:-1])})
        elif roll < 0.2:
            await dashboard.delete(f"/v1/customers/{self.rng.choice(alive)}")
        else:
            field = self.rng.choice(["name", "email"])
            value = self.rng.choice(NAMES if field == "name" else EMAILS)
            await dashboard.post(f"/v1/customers/{self.rng.choice(alive)}", data={field: value or ""})

    def _kill_a_worker(self) -> None:
        victim = self.worker_procs.pop(self.rng.randrange(len(self.worker_procs)))
        self.processes.kill(victim)
        self.report.worker_kills += 1
        self.worker_procs.append(self.processes.start("worker"))

    async def _converge(self, http: httpx.AsyncClient, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        stable_since = None
        while time.monotonic() < deadline:
            moved = await self.webhooks.pump(http, limit=200)
            divergences = await self.divergences()
            if not divergences and not moved and not self.webhooks.pending:
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since > 2.0:  # equal, and nothing moved for 2 s
                    self.report.divergences = []
                    return True
            else:
                stable_since = None
            self.report.divergences = divergences
            await asyncio.sleep(0.25)
        return False

    async def divergences(self) -> list[str]:
        async with self.engine.connect() as connection:
            rows = (await connection.execute(text(
                "SELECT c.id, c.name, c.email, c.deleted, m.external_id FROM customers c "
                "LEFT JOIN external_mappings m ON m.customer_id = c.id AND m.system = 'stripe'"
            ))).all()
        stripe_side = dict(self.server.stripe.customers)
        found, linked = [], set()
        for cid, name, email, deleted, external_id in rows:
            if deleted:
                if external_id in stripe_side:
                    found.append(f"customer {cid} is deleted here but {external_id} lives in Stripe")
                continue
            if external_id is None or external_id not in stripe_side:
                found.append(f"customer {cid} has no live twin in Stripe ({external_id})")
                continue
            linked.add(external_id)
            twin = stripe_side[external_id]
            if (twin["name"], twin["email"]) != (name, email):
                found.append(f"customer {cid}: catalog {(name, email)} != Stripe {(twin['name'], twin['email'])}")
            if twin["metadata"].get("internal_id") != str(cid):
                found.append(f"customer {cid}: Stripe {external_id} carries internal_id {twin['metadata'].get('internal_id')}")
        for external_id in set(stripe_side) - linked:
            found.append(f"Stripe {external_id} has no live twin in the catalog")
        owners = [c["metadata"].get("internal_id") for c in stripe_side.values() if c["metadata"].get("internal_id")]
        if len(owners) != len(set(owners)):
            found.append("two Stripe customers carry the same internal_id")
        return found


def report_json(report: SoakReport) -> str:
    return json.dumps(report.__dict__, indent=2)


__all__ = ["Soak", "SoakReport", "report_json"]
