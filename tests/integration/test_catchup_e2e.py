"""Catch-up, end to end: the webhook endpoint receives nothing (disabled, misconfigured, down) while
50 changes are made in Stripe; the real `custsync worker` reads them back from Stripe's event log
(``GET /v1/events`` on the Stripe-compatible HTTP server) and both sides converge within one
polling interval and a few seconds, with no duplicate and nothing bounced back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from tests.integration.test_reconcile_e2e import query
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

INTERVAL = 3  # seconds between polls (CATCHUP_INTERVAL; 60 by default)
LINKED, CREATED = 10, 30


async def catalog_matches_stripe(pipeline) -> bool:
    """Every live catalog customer is linked to a live Stripe customer holding the same data and
    tagged with its id, and every live Stripe customer is one of them; nothing waits in the outbox."""
    [(pending,)] = await query(pipeline, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
    rows = await query(
        pipeline,
        """
        SELECT c.id, c.name, c.email, m.external_id FROM customers c
        LEFT JOIN external_mappings m ON m.customer_id = c.id AND m.system = 'stripe' WHERE NOT c.deleted""",
    )
    stripe = pipeline.stripe.stripe.customers
    if pending or len(rows) != len(stripe):
        return False
    for customer_id, name, email, external_id in rows:
        held = stripe.get(external_id) if external_id else None
        if (
            held is None
            or (held["name"], held["email"]) != (name, email)
            or held["metadata"].get("internal_id") != str(customer_id)
        ):
            return False
    return True


async def test_changes_no_webhook_delivered_reach_the_catalog_through_catch_up(pipeline):
    pipeline.start_api()
    worker = pipeline.processes.start("worker", CATCHUP_INTERVAL=str(INTERVAL))
    pipeline.wait_for_api()
    for i in range(LINKED):
        answer = pipeline.http.post("/api/v1/customers", json={"name": f"Linked {i}", "email": f"linked{i}@example.com"})
        assert answer.status_code == 201, answer.text
    await asyncio.to_thread(
        wait_until, lambda: asyncio.run(catalog_matches_stripe(pipeline)), 60, 0.2, "the API's customers in Stripe"
    )
    # The first poll starts the cursor at that moment; what came before it is reconcile's business.
    await asyncio.to_thread(
        wait_until,
        lambda: asyncio.run(query(pipeline, "SELECT 1 FROM sync_cursors WHERE system = 'stripe'")),
        30,
        0.2,
        "the first poll",
    )
    stripe = pipeline.stripe.stripe
    linked = {row[1]: row[0] for row in await query(pipeline, "SELECT customer_id, external_id FROM external_mappings")}
    linked_ids = sorted(linked, key=lambda external_id: linked[external_id])
    [(inbox_before,)] = await query(pipeline, "SELECT count(*) FROM inbox")

    # 50 changes made in Stripe (dashboard, another app); not one webhook is delivered.
    made = [await stripe.create_async(params={"name": f"Stripe {i}", "email": f"s{i}@stripe.test"}) for i in range(CREATED)]
    for external_id in linked_ids[:8]:
        await stripe.update_async(external_id, params={"name": f"Renamed {linked[external_id]}"})
    for external_id in linked_ids[:7]:
        await stripe.update_async(external_id, params={"email": f"new{linked[external_id]}@example.com"})
    for external_id in [*linked_ids[8:], *(customer["id"] for customer in made[:3])]:
        await stripe.delete_async(external_id)
    assert len(stripe.events) >= 50
    last_change = time.monotonic()

    await asyncio.to_thread(
        wait_until,
        lambda: asyncio.run(catalog_matches_stripe(pipeline)),
        INTERVAL + 30,
        0.2,
        "the catalog caught up",
    )
    caught_up = time.monotonic() - last_change
    print(f"caught up {caught_up:.1f}s after the last change (CATCHUP_INTERVAL={INTERVAL})")

    live = await query(pipeline, "SELECT id, name, email FROM customers WHERE NOT deleted ORDER BY id")
    assert len(live) == LINKED - 2 + CREATED - 3  # the two linked deleted, the three made-then-deleted never live here
    assert max(Counter(email for _, _, email in live).values()) == 1  # nobody twice
    by_id = {customer_id: (name, email) for customer_id, name, email in live}
    for external_id in linked_ids[:7]:
        assert by_id[linked[external_id]] == (f"Renamed {linked[external_id]}", f"new{linked[external_id]}@example.com")
    assert set(linked.values()) - set(by_id) == {linked[e] for e in linked_ids[8:]}
    [(deleted,)] = await query(pipeline, "SELECT count(*) FROM customers WHERE deleted")
    assert deleted == 2  # the linked two; the three made and deleted in between were never imported
    # Every change was applied once, through the inbox, and nothing bounced back: no outbound
    # update reached Stripe for a customer Stripe changed (only the tags of the imported ones).
    [(applied,)] = await query(pipeline, "SELECT count(*) FROM inbox")
    assert applied - inbox_before >= 50
    updates = Counter(
        path for method, path, _ in pipeline.stripe.requests if method == "POST" and path.startswith("/v1/customers/")
    )
    assert not {f"/v1/customers/{external_id}" for external_id in linked_ids} & set(updates)
    assert worker.poll() is None
    assert "catch-up: " in pipeline.processes.log(worker)
