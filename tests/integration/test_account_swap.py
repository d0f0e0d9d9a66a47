"""Finding 3, end to end: real `custsync api` and `worker` processes on PostgreSQL and Kafka, a
Stripe-compatible server, and a second Stripe account swapped in mid-run. The worker pauses, a
restart refuses; not one catalog customer changes but for the edits made through the API."""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.test_sync_pipeline import api_ready, stripe_link
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration


def catalog(pipeline) -> list[dict]:
    body = pipeline.http.get("/api/v1/customers", params={"limit": 100}, timeout=5).json()
    return [{k: c[k] for k in ("id", "name", "email", "version")} for c in body["data"]]


def link(pipeline, customer_id: int) -> dict:
    [mapping] = pipeline.http.get(f"/api/v1/customers/{customer_id}", timeout=5).json()["mappings"]
    return mapping


def exits_with_one_line(proc: subprocess.Popen, pipeline) -> str:
    assert proc.wait(30) == 1
    lines = [line for line in pipeline.processes.log(proc).splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in pipeline.processes.log(proc)
    return lines[0]


async def test_a_second_account_swapped_in_mid_run_changes_no_catalog_customer(pipeline):
    api, worker = pipeline.start_api(), pipeline.start_worker()
    wait_until(lambda: api_ready(pipeline), what="the API")
    ids = [
        pipeline.http.post("/api/v1/customers", json={"name": f"C{i}", "email": f"c{i}@example.com"}, timeout=5).json()["id"]
        for i in range(3)
    ]
    for customer_id in ids:
        wait_until(lambda customer_id=customer_id: stripe_link(pipeline, customer_id), what=f"customer {customer_id} synced")
    before = catalog(pipeline)

    # Mid-run, the key starts answering for another account (a key switched at a proxy, a
    # restored sandbox...): every mapped customer is a 404 there, and the worker pauses.
    pipeline.stripe.accounts["sk_test_integration"] = pipeline.stripe.add_account("sk_test_other", "acct_other")
    changed = pipeline.http.patch(f"/api/v1/customers/{ids[0]}", json={"name": "C0 renamed"}, timeout=5)
    assert changed.status_code == 200
    wait_until(lambda: "sync is paused" in pipeline.processes.log(worker), what="the worker pausing")
    # A create made once sync is paused waits. (One made within the guard's 10 s window before
    # the first 404 could reach the other account, as docs/concepts/sync-semantics.md says: only its check before
    # creates would catch it, and that check was just made for the three above.)
    created = pipeline.http.post("/api/v1/customers", json={"name": "New", "email": "new@example.com"}, timeout=5)
    assert link(pipeline, ids[0])["sync_status"] == "retrying"  # waiting, not broken: the account is at fault
    after = catalog(pipeline)
    assert after[1:3] == before[1:] and after[0]["name"] == "C0 renamed"  # our own edits only; nothing deleted
    assert [c["name"] for c in after[3:]] == ["New"] and created.status_code == 201
    assert pipeline.stripe.accounts["sk_test_other"].customers == {}  # nothing made in the other account
    assert len(pipeline.stripe.stripe.customers) == 3  # nor deleted in ours
    assert worker.poll() is None  # paused, not exited

    # Restarted with the other account's key, both processes refuse to start, in one line.
    for proc in (api, worker):
        proc.terminate()
        proc.wait(15)
    pipeline.processes.env["STRIPE_SECRET_KEY"] = "sk_test_other"
    refusal = exits_with_one_line(pipeline.start_worker(), pipeline)
    assert "acct_other" in refusal and "acct_default" in refusal and "custsync stripe rebind" in refusal
    exits_with_one_line(pipeline.start_api(), pipeline)
    # (the catalog is read back with the right key, through a fresh API)
    pipeline.processes.env["STRIPE_SECRET_KEY"] = "sk_test_integration"
    pipeline.stripe.accounts.pop("sk_test_integration")
    pipeline.start_api()
    wait_until(lambda: api_ready(pipeline), what="the API again")
    assert catalog(pipeline) == after
