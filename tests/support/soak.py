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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

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
    outage: str | None = None  # what was down, and for how long
    outage_seconds: float = 0.0
    refused_during_outage: int = 0  # API calls answered 503 (the caller is told to retry; nothing lost)
    webhook_server_errors: int = 0  # webhooks answered 5xx other than 503
    process_exits: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        outage = (
            [
                f"outage                              {self.outage} down for {self.outage_seconds:.0f} s",
                f"API calls answered 503 meanwhile    {self.refused_during_outage}",
                f"webhooks answered 5xx other than 503 {self.webhook_server_errors}",
                f"processes that exited               {len(self.process_exits)} {self.process_exits or ''}",
            ]
            if self.outage
            else []
        )
        after = "after the outage ended" if self.outage else "after the last op   "
        return [
            f"customers created through the API   {self.customers}",
            f"operations (API / Stripe side)      {self.operations} ({self.api_operations} / {self.stripe_operations})",
            f"webhook deliveries (incl. repeats)  {self.webhook_deliveries}",
            f"workers SIGKILLed and restarted     {self.worker_kills}",
            f"Stripe API calls by the worker      {self.stripe_calls} ({self.stripe_faults_injected} answered 429/500)",
            f"time to run the operations          {self.ops_seconds:.1f} s",
            *outage,
            f"time to converge {after}  {'never' if self.converge_seconds is None else f'{self.converge_seconds:.1f} s'}",
            f"dead letters                        {self.dead_letters}",
            f"divergences                         {len(self.divergences)}",
            *[f"  - {d}" for d in self.divergences[:50]],
        ]


class WebhookSender:
    """Stripe's side of webhook delivery: every event at least once, some twice, shuffled."""

    BACKOFF_SECONDS = 5.0  # Stripe's is minutes to hours; scaled down to the tests' time

    def __init__(self, server: StripeServer, api_url: str, secret: str, rng: random.Random, repeat: float = 0.3) -> None:
        self.server, self.url, self.secret, self.rng, self.repeat = (
            server,
            f"{api_url}/api/v1/webhooks/stripe",
            secret,
            rng,
            repeat,
        )
        self.taken = 0
        self.pending: list[dict] = []
        self.deliveries = 0
        self.server_errors: list[int] = []  # statuses >= 500 other than 503 (an outage, said as such)
        self.backoff_until = 0.0  # after a 503 or no answer, Stripe waits before it tries again

    async def pump(self, http: httpx.AsyncClient, limit: int = 50) -> int:
        events = self.server.stripe.events  # appended to by the server thread; slicing is atomic
        self.pending += events[self.taken :]
        self.taken += len(events[self.taken :])
        sent = 0
        if time.monotonic() < self.backoff_until:
            return 0
        while self.pending and sent < limit:
            event = self.pending.pop(self.rng.randrange(len(self.pending)))
            payload, header = self.server.stripe.signed_event(event, self.secret)
            try:
                response = await http.post(
                    self.url, content=payload, headers={"stripe-signature": header, "content-type": "application/json"}
                )
                delivered, unavailable = response.status_code == 200, response.status_code == 503
                if response.status_code >= 500 and not unavailable:
                    self.server_errors.append(response.status_code)
            except httpx.TransportError:
                delivered, unavailable = False, True
            if not delivered or self.rng.random() < self.repeat:
                self.pending.append(event)  # Stripe retries failures, and sometimes repeats successes
            self.deliveries += delivered
            sent += 1
            if unavailable:
                self.backoff_until = time.monotonic() + self.BACKOFF_SECONDS
                break  # the endpoint is down: Stripe backs off before the next attempts
        return sent


@dataclass
class Outage:
    """Something goes down for ``seconds`` while the operations run (spread over that window),
    then comes back; convergence is timed from its return."""

    name: str
    seconds: float
    begin: Callable[[], Awaitable[None]]
    end: Callable[[], Awaitable[None]]


def stripe_outage(server: StripeServer, seconds: float, status: int = 503) -> Outage:
    async def begin() -> None:
        server.down_status = status

    async def end() -> None:
        server.down_status = None

    return Outage(f"Stripe API (every call answered {status})", seconds, begin, end)


def service_outage(name: str, script: str, seconds: float, start: tuple[str, ...]) -> Outage:
    """Stop and restart one of the project's own services (scripts/postgres.sh, scripts/kafka.sh)."""
    path = str(Path(__file__).resolve().parents[2] / "scripts" / script)

    async def run(*args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            path, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 180)
        if proc.returncode:
            raise RuntimeError(f"{script} {' '.join(args)} failed: {err.decode()[-2000:]}")

    async def begin() -> None:
        await run("down")

    async def end() -> None:
        for step in start:
            await run(step)

    return Outage(name, seconds, begin, end)


def postgres_outage(seconds: float) -> Outage:
    return service_outage("PostgreSQL (stopped)", "postgres.sh", seconds, ("up",))


def kafka_outage(seconds: float) -> Outage:
    return service_outage("Kafka broker (stopped)", "kafka.sh", seconds, ("start", "wait"))


class Soak:
    def __init__(
        self,
        *,
        processes: Processes,
        server: StripeServer,
        api_url: str,
        database_url: str,
        secret: str,
        customers: int,
        operations: int,
        workers: int = 2,
        kill_every: int = 0,
        seed: int = 7,
        outage: Outage | None = None,
    ) -> None:
        self.processes, self.server, self.api_url, self.database_url = processes, server, api_url, database_url
        self.outage = outage
        self.customers, self.operations, self.workers, self.kill_every = customers, operations, workers, kill_every
        self.rng = random.Random(seed)
        self.webhooks = WebhookSender(server, api_url, secret, self.rng)
        self.report = SoakReport()
        self.worker_procs: list = []

    async def run(self, converge_timeout: float = 120.0) -> SoakReport:
        self.api_proc = self.processes.start("api", "--port", self.api_url.rsplit(":", 1)[1])
        self.worker_procs = [self.processes.start("worker") for _ in range(self.workers)]
        # One pool for every look at the database: convergence is polled four times a second.
        self.engine = create_engine(self.database_url, pool_size=1)
        try:
            auth = {"Authorization": f"Bearer {self.processes.env['API_TOKEN']}"}
            async with httpx.AsyncClient(base_url=self.api_url, timeout=30, headers=auth) as http:
                await wait_for_health(http)
                started = time.monotonic()
                ids = await self._create_customers(http)
                if self.outage is None:
                    await self._operate(http, ids)
                else:
                    await self._operate_through(self.outage, http, ids)
                self.report.ops_seconds = time.monotonic() - started
                settled = time.monotonic()
                if await self._converge(http, converge_timeout):
                    self.report.converge_seconds = time.monotonic() - settled
                self.report.process_exits = [
                    f"{p.args[1]} exited {p.returncode}" for p in [self.api_proc, *self.worker_procs] if p.poll() is not None
                ]
            async with self.engine.connect() as connection:
                self.report.dead_letters = (await connection.execute(text("SELECT count(*) FROM dead_letters"))).scalar_one()
        finally:
            await self.engine.dispose()
        self.report.webhook_deliveries = self.webhooks.deliveries
        self.report.webhook_server_errors = len(self.webhooks.server_errors)
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

    async def _operate_through(self, outage: Outage, http: httpx.AsyncClient, ids: list[int]) -> None:
        """Down, the operations spread over the outage (webhooks pumped as Stripe would), up."""
        self.report.outage = outage.name
        await self.webhooks.pump(http, limit=1000)  # what happened before goes through first
        await outage.begin()
        began = time.monotonic()
        try:
            await self._operate(http, ids, pace=outage.seconds / max(self.operations, 1))
            await asyncio.sleep(max(0.0, began + outage.seconds - time.monotonic()))
        finally:
            await outage.end()
            self.report.outage_seconds = time.monotonic() - began

    async def _operate(self, http: httpx.AsyncClient, ids: list[int], pace: float = 0.0) -> None:
        dashboard = httpx.AsyncClient(
            base_url=self.server.url, timeout=30, headers={"x-dashboard": "1", "authorization": "Bearer sk_test_dashboard"}
        )
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
                if pace:
                    await asyncio.sleep(pace)
        finally:
            await dashboard.aclose()

    async def _api_edit(self, http: httpx.AsyncClient, ids: list[int]) -> None:
        roll = self.rng.random()
        customer_id = self.rng.choice(ids)
        if roll < 0.1:
            response = await http.delete(f"/api/v1/customers/{customer_id}")
        elif roll < 0.2:
            response = await http.post("/api/v1/customers", json={"name": self.rng.choice(NAMES)})
            if response.status_code == 201:
                ids.append(response.json()["id"])
        else:
            field = self.rng.choice(["name", "email"])
            value = self.rng.choice(NAMES if field == "name" else EMAILS)
            response = await http.patch(f"/api/v1/customers/{customer_id}", json={field: value})
        if response.status_code == 503:  # refused while a backend is down: nothing was accepted
            assert response.headers.get("retry-after"), "a 503 says when to retry"
            self.report.refused_during_outage += 1
        elif response.status_code >= 500:
            raise AssertionError(f"the API answered {response.status_code}: {response.text}")

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
            rows = (
                await connection.execute(
                    text(
                        "SELECT c.id, c.name, c.email, c.deleted, m.external_id FROM customers c "
                        "LEFT JOIN external_mappings m ON m.customer_id = c.id AND m.system = 'stripe'"
                    )
                )
            ).all()
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
        found += [f"Stripe {external_id} has no live twin in the catalog" for external_id in set(stripe_side) - linked]
        owners = [c["metadata"].get("internal_id") for c in stripe_side.values() if c["metadata"].get("internal_id")]
        if len(owners) != len(set(owners)):
            found.append("two Stripe customers carry the same internal_id")
        return found


def report_json(report: SoakReport) -> str:
    return json.dumps(report.__dict__, indent=2)


__all__ = ["Outage", "Soak", "SoakReport", "kafka_outage", "postgres_outage", "report_json", "stripe_outage"]
