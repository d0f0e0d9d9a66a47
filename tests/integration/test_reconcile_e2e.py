"""Installing on an existing account, end to end: customers on both sides before the service ever
ran, then `custsync reconcile --match-by email` (a real process) with the real `custsync worker`
on PostgreSQL and Kafka, against the Stripe-compatible HTTP server; and the same run SIGKILLed
halfway and run again."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter

import pytest
from sqlalchemy import text

from adapters.postgres.unit_of_work import SqlAlchemyUnitOfWorkFactory
from domain.customer import CustomerData
from tests.support.processes import CUSTSYNC, wait_until

pytestmark = pytest.mark.integration

SHARED, AMBIGUOUS, STRIPE_ONLY, CATALOG = 100, 10, 390, 300


async def existing_data(pipeline) -> None:
    """500 Stripe customers and 300 catalog customers; 100 people on both sides (same email, the
    case and the names not always alike), 10 of them twice in Stripe (ambiguous)."""
    stripe = pipeline.stripe.stripe
    for i in range(SHARED):
        await stripe.create_async(
            params={"name": f"Person {i}", "email": f"P{i}@Example.com" if i % 7 == 0 else f"p{i}@example.com"}
        )
    for i in range(AMBIGUOUS):
        await stripe.create_async(params={"name": f"Person {i} (second record)", "email": f"p{i}@example.com"})
    for i in range(STRIPE_ONLY):
        await stripe.create_async(params={"name": f"Stripe {i}", "email": f"s{i}@stripe.test"})
    engine = pipeline.engine()
    try:
        async with SqlAlchemyUnitOfWorkFactory(engine)() as uow:
            for i in range(CATALOG):
                email = f"p{i}@example.com" if i < SHARED else f"c{i}@catalog.test"
                await uow.customers.add(CustomerData(f"Person {i}" if i % 3 else None, email), pipeline_now())
            await uow.commit()
    finally:
        await engine.dispose()
    await asyncio.sleep(0.01)  # the run starts strictly after these were made


def pipeline_now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def reconcile_json(pipeline, *args: str, timeout: float = 120) -> dict:
    result = subprocess.run(
        [CUSTSYNC, "reconcile", "--json", "--no-progress", *args],
        env=pipeline.processes.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


async def query(pipeline, sql: str) -> list:
    engine = pipeline.engine()
    try:
        async with engine.connect() as connection:
            return list(await connection.execute(text(sql)))
    finally:
        await engine.dispose()


async def converged(pipeline) -> bool:
    """Every link's two sides hold the same data, the links tagged, no export or tag pending."""
    rows = await query(
        pipeline,
        """
        SELECT c.id, c.name, c.email, m.external_id FROM customers c
        LEFT JOIN external_mappings m ON m.customer_id = c.id AND m.system = 'stripe' WHERE NOT c.deleted""",
    )
    pending = await query(pipeline, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
    if pending[0][0]:
        return False
    stripe = pipeline.stripe.stripe.customers
    unlinked = 0
    for customer_id, name, email, external_id in rows:
        if external_id is None:
            unlinked += 1
            continue
        held = stripe.get(external_id)
        if (
            held is None
            or (held["name"], held["email"]) != (name, email)
            or held["metadata"].get("internal_id") != str(customer_id)
        ):
            return False
    return unlinked == AMBIGUOUS


async def assert_first_sync_end_state(pipeline) -> None:
    await asyncio.to_thread(wait_until, lambda: asyncio.run(converged(pipeline)), 120, 0.5, "both sides converged")
    catalog = await query(pipeline, "SELECT lower(email) FROM customers WHERE NOT deleted")
    stripe = pipeline.stripe.stripe.customers
    assert len(catalog) == CATALOG + STRIPE_ONLY  # the 390 imported; nobody else
    assert len(stripe) == SHARED + AMBIGUOUS + STRIPE_ONLY + (CATALOG - SHARED)  # the 200 exported; nobody else
    # 0 duplicates: one catalog customer per email, one Stripe customer per email but for the
    # ambiguous ones (twice in Stripe before the install, left for a person to decide).
    assert max(Counter(catalog).values()) == 1
    per_email = Counter((c["email"] or "").lower() for c in stripe.values())
    assert sorted(e for e, n in per_email.items() if n > 1) == sorted(f"p{i}@example.com" for i in range(AMBIGUOUS))
    assert all(n == 2 for e, n in per_email.items() if n > 1)


def deliver_webhook(pipeline, event: dict) -> None:
    from tests.integration.conftest import PIPELINE_WEBHOOK_SECRET

    payload, header = pipeline.stripe.stripe.signed_event(event, PIPELINE_WEBHOOK_SECRET)
    answer = pipeline.http.post(
        "/api/v1/webhooks/stripe", content=payload, headers={"stripe-signature": header, "content-type": "application/json"}
    )
    assert answer.status_code == 200, answer.text


async def edits_before_the_first_sync(pipeline) -> None:
    """The issue's reproduction: after the install, before the first sync, people on both sides are
    edited on each side (one in the catalog through the API, one in Stripe with its webhook
    delivered); the worker is not running yet, as the install order of docs/how-to/first-sync.md says."""
    pipeline.wait_for_api()
    [(person_20,)] = await query(pipeline, "SELECT id FROM customers WHERE email = 'p20@example.com'")
    answer = pipeline.http.patch(f"/api/v1/customers/{person_20}", json={"name": "Renamed in the catalog"})
    assert answer.status_code == 200, answer.text
    stripe = pipeline.stripe.stripe
    [person_42] = [c["id"] for c in stripe.customers.values() if c["email"] == "P42@Example.com"]  # no name in the catalog
    await stripe.update_async(person_42, params={"name": "Named in Stripe"})
    deliver_webhook(pipeline, stripe.events[-1])


async def test_a_first_sync_links_one_pair_per_person_and_reports_the_ambiguous(pipeline):
    await existing_data(pipeline)
    pipeline.start_api()
    await edits_before_the_first_sync(pipeline)
    report = reconcile_json(pipeline, "--match-by", "email")
    pipeline.start_worker()
    run, findings = report["run"], report["findings"]
    assert run["status"] == "done", run
    fixes = Counter((f["kind"], f["fix"]) for f in findings)
    assert fixes == {
        ("only_here", "link"): SHARED - AMBIGUOUS,
        ("ambiguous", "none"): AMBIGUOUS,
        ("only_here", "export"): CATALOG - SHARED,
        ("only_there", "import"): STRIPE_ONLY,
    }
    assert run["counts"]["external_listed"] == SHARED + AMBIGUOUS + STRIPE_ONLY
    await assert_first_sync_end_state(pipeline)
    names = dict(await query(pipeline, "SELECT lower(email), name FROM customers WHERE email ILIKE ANY(ARRAY['p20@%', 'p42@%'])"))
    assert names == {"p20@example.com": "Renamed in the catalog", "p42@example.com": "Named in Stripe"}

    again = reconcile_json(pipeline, "--match-by", "email")
    assert Counter(f["kind"] for f in again["findings"]) == {"ambiguous": AMBIGUOUS}  # nothing else to do
    assert again["run"]["counts"]["in_sync"] == CATALOG + STRIPE_ONLY - AMBIGUOUS


async def test_a_reconcile_killed_halfway_and_run_again_applies_no_fix_twice(pipeline):
    await existing_data(pipeline)
    pipeline.start_api()
    pipeline.start_worker()
    # Slowed down, so that it is killed in the middle of its fixes.
    slow = pipeline.processes.start("reconcile", "--match-by", "email", "--no-progress", STRIPE_MAX_RPS="40")
    deadline = time.monotonic() + 60
    applied = 0
    while time.monotonic() < deadline and applied < 150:
        [(applied,)] = await query(pipeline, "SELECT count(*) FROM reconcile_findings WHERE fix_status = 'applied'")
        await asyncio.sleep(0.05)
    assert slow.poll() is None, "the run finished before it could be killed"
    pipeline.processes.kill(slow)
    [(status, _phase)] = await query(pipeline, "SELECT status, phase FROM reconcile_runs")
    assert status == "running" and applied >= 150

    report = reconcile_json(pipeline, "--match-by", "email")
    assert report["run"]["status"] == "done" and report["run"]["trigger"] == "cli"
    assert len(await query(pipeline, "SELECT id FROM reconcile_runs")) == 1  # resumed, not started anew
    assert Counter(f["fix_status"] for f in report["findings"]) == {"applied": 680, "none": AMBIGUOUS}
    await assert_first_sync_end_state(pipeline)
    # No fix applied twice: one outbox event per export and per import, at most two per link.
    events = await query(
        pipeline,
        """
        SELECT customer_id, payload->>'kind', payload->>'origin' FROM outbox ORDER BY position""",
    )
    created = Counter(customer_id for customer_id, kind, _ in events if kind == "created")
    assert len(created) == CATALOG + STRIPE_ONLY - AMBIGUOUS and set(created.values()) == {1}
    creates = {key for method, path, key in pipeline.stripe.requests if (method, path) == ("POST", "/v1/customers")}
    assert len(creates) == CATALOG - SHARED  # one create (and one idempotency key) per exported customer
