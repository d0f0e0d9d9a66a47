"""``GET /metrics`` on the in-memory backends: each of custsync's figures moves when its event
happens (scraped before and after), with bounded labels."""

from __future__ import annotations

from application.status import read_status
from tests.http.helpers import CUSTOMERS, STRIPE_WEBHOOK, create, url
from tests.http.test_webhooks import customer_event, in_stripe, post_signed
from tests.support.scrape import scrape


async def test_a_create_synced_to_stripe_counts_one_synced_delivery_and_its_latency(client, system):
    before = await scrape(client)
    customer = await create(client, name="Ada", email="ada@example.com")
    await system.settle()
    after = await scrape(client)

    delivered = "custsync_deliveries_total"
    assert (
        after.value(delivered, topic="sync.outbound", outcome="synced")
        - before.value(delivered, topic="sync.outbound", outcome="synced")
        == 1
    )
    latency = "custsync_sync_latency_seconds_count"
    assert (
        after.value(latency, direction="outbound", system="stripe") - before.value(latency, direction="outbound", system="stripe")
        == 1
    )
    # Stripe's event of our own create comes back and is recognised as ours.
    assert (
        after.value(delivered, topic="sync.inbound", outcome="echo")
        + after.value(delivered, topic="sync.inbound", outcome="synced")
        >= 1
    )
    mapping = await system.mapping(customer["id"])
    labels = after.label_values()
    assert str(customer["id"]) not in labels and mapping.external_id not in labels  # never a customer as a label
    assert labels <= {
        "sync.outbound",
        "sync.inbound",
        "webhooks.rejected",
        "stripe",
        "outbound",
        "inbound",
        "synced",
        "echo",
        "unchanged",
        "conflict",
        "duplicate",
    }, labels


async def test_an_edit_made_in_stripe_counts_inbound_with_its_latency_from_the_event(client, system, clock):
    customer = await create(client, name="Ada", email="ada@example.com")
    await system.settle()
    before = await scrape(client)
    mapping = await system.mapping(customer["id"])
    clock.advance(2.0)
    await system.stripe.update_async(mapping.external_id, params={"name": "Ada King"})
    await system.settle()
    after = await scrape(client)

    delivered = "custsync_deliveries_total"
    assert (
        after.value(delivered, topic="sync.inbound", outcome="synced")
        - before.value(delivered, topic="sync.inbound", outcome="synced")
        == 1
    )
    latency = "custsync_sync_latency_seconds_count"
    assert (
        after.value(latency, direction="inbound", system="stripe") - before.value(latency, direction="inbound", system="stripe")
        == 1
    )
    assert (await client.get(url(customer["id"]))).json()["name"] == "Ada King"


async def test_webhooks_are_counted_by_result_and_rejections_by_reason(client, system):
    before = await scrape(client)
    ada = in_stripe(system, "cus_ada", "Ada", "ada@example.com")
    assert (await post_signed(client, system, customer_event("evt_1", "customer.created", ada))).status_code == 200
    assert (await post_signed(client, system, customer_event("evt_2", "invoice.paid", ada))).status_code == 200
    forged = await client.post(STRIPE_WEBHOOK, content=b"{}", headers={"stripe-signature": "t=1,v1=00"})
    unsigned = await client.post(STRIPE_WEBHOOK, content=b"{}")
    nobody = await client.post("/api/v1/webhooks/no-such-system-" + "x" * 40, content=b"{}")
    assert (forged.status_code, unsigned.status_code, nobody.status_code) == (400, 400, 404)
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("custsync_webhooks_received_total", system="stripe", result="accepted") == 1
    assert moved("custsync_webhooks_received_total", system="stripe", result="ignored") == 1
    assert moved("custsync_webhooks_rejected_total", system="stripe", reason="signature") == 2
    # A made-up system name is never a label value: it is counted as "unknown".
    assert moved("custsync_webhooks_rejected_total", system="unknown", reason="unknown_system") == 1
    assert "no-such-system-" + "x" * 40 not in after.label_values()


async def test_a_redelivered_webhook_counts_as_a_duplicate_where_the_inbox_drops_it(client, system):
    ada = in_stripe(system, "cus_ada", "Ada", "ada@example.com")
    event = customer_event("evt_twice", "customer.created", ada)
    await post_signed(client, system, event)
    await system.settle()
    before = await scrape(client)
    await post_signed(client, system, event)
    await system.settle()
    after = await scrape(client)
    name = "custsync_deliveries_total"
    assert (
        after.value(name, topic="sync.inbound", outcome="duplicate")
        - before.value(name, topic="sync.inbound", outcome="duplicate")
        == 1
    )


async def test_a_rate_limited_push_counts_a_retry_and_a_refused_one_a_dead_letter(client, system):
    before = await scrape(client)
    system.stripe.fail_next("create", 429)
    await create(client, name="Ada", email="ada@example.com")
    await system.settle()
    middle = await scrape(client)
    system.stripe.fail_next("create", 400)
    await create(client, name="Bob", email="bob@example.com")
    await system.settle()
    after = await scrape(client)
    name = "custsync_deliveries_total"
    assert (
        middle.value(name, topic="sync.outbound", outcome="retried")
        - before.value(name, topic="sync.outbound", outcome="retried")
        == 1
    )
    assert (
        after.value(name, topic="sync.outbound", outcome="dead") - middle.value(name, topic="sync.outbound", outcome="dead") == 1
    )
    assert after.value("custsync_dead_letters_stored_total", topic="sync.outbound") == 1

    replayed = await client.post("/api/v1/dead-letters/replay", json={"all": True})
    assert replayed.status_code == 200
    assert (await scrape(client)).value("custsync_dead_letters_replayed_total", topic="sync.outbound") == 1


async def test_the_sampled_gauges_show_the_backlog_the_drift_and_the_dead_letters(client, system):
    metrics = system.container.metrics()

    async def sample():
        c = system.container
        metrics.observe_status(await read_status(c.uow_factory(), c.integrations(), c.consumer_lag(), c.clock()))
        return await scrape(client)

    await create(client, name="Ada", email="ada@example.com")
    await create(client, name="Bob", email="bob@example.com")
    waiting = await sample()
    assert waiting.value("custsync_outbox_backlog_events") == 2
    assert waiting.value("custsync_customers_out_of_sync", system="stripe", status="unlinked") == 2

    await system.relay()
    published = await sample()
    assert published.value("custsync_outbox_backlog_events") == 0
    # Each system's group reads sync.outbound on its own: the two changes wait for Stripe's.
    assert published.value("custsync_consumer_lag_messages", topic="sync.outbound", system="stripe") == 2
    assert published.value("custsync_consumer_lag_messages", topic="sync.inbound", system="catalog") == 0

    system.stripe.fail_next("create", 400)
    await system.settle()
    settled = await sample()
    assert settled.value("custsync_consumer_lag_messages") == 0
    assert settled.value("custsync_customers_out_of_sync", system="stripe", status="unlinked") == 1
    assert settled.value("custsync_customers_out_of_sync", system="stripe", status="dead") == 1
    assert settled.value("custsync_dead_letters_waiting", topic="sync.outbound") == 1
    assert settled.value("custsync_last_success_timestamp_seconds", system="stripe", direction="outbound") > 0


async def test_the_worker_listener_serves_the_same_registry(system):
    from litestar.testing import AsyncTestClient

    from entrypoints.http.app import create_worker_app

    async with AsyncTestClient(create_worker_app(system.container)) as http:
        before = await scrape(http)
        system.container.metrics().dead_lettered("sync.inbound")
        after = await scrape(http)
    assert (
        after.value("custsync_dead_letters_stored_total", topic="sync.inbound")
        - before.value("custsync_dead_letters_stored_total", topic="sync.inbound")
        == 1
    )
    assert after.value("process_cpu_seconds_total") >= 0 and "process_cpu_seconds_total" in after.text


async def test_metrics_are_not_in_the_api_document(client):
    document = (await client.get("/schema/openapi.json")).json()
    assert "/metrics" not in document["paths"] and "/api/v1/status" in document["paths"]
    assert (await client.get(CUSTOMERS)).status_code == 200


async def test_a_request_id_follows_the_change_into_its_outbox_event_and_a_webhook_into_sync_inbound(client, system):
    from domain.messages import CustomerChanged, ExternalChange, decode

    created = await client.post(CUSTOMERS, json={"name": "Ada"}, headers={"x-request-id": "req-from-caller.1"})
    assert created.headers["x-request-id"] == "req-from-caller.1"
    hostile = await client.post(CUSTOMERS, json={"name": "Bob"}, headers={"x-request-id": "evil\x7f" + "x" * 200})
    made_up = hostile.headers["x-request-id"]
    assert len(made_up) == 32 and made_up.isalnum()  # not echoed: a fresh id instead

    await system.relay()
    events = {e.customer_id: e for e in (decode(m.payload, CustomerChanged) for m in system.messages("sync.outbound"))}
    assert [events[c.json()["id"]].correlation_id for c in (created, hostile)] == ["req-from-caller.1", made_up]

    ada = in_stripe(system, "cus_ada", "Ada", "ada@example.com")
    payload, signature = system.stripe.signed_event(customer_event("evt_c", "customer.created", ada), "whsec_test_secret")
    hook = await client.post(STRIPE_WEBHOOK, content=payload, headers={"stripe-signature": signature, "x-request-id": "hook-7"})
    assert hook.status_code == 200
    [change] = [decode(m.payload, ExternalChange) for m in system.messages("sync.inbound")]
    assert change.correlation_id == "hook-7"


async def test_a_retention_pass_counts_what_it_deleted_and_scrubbed(client, system):
    from application.sync.retention import RetentionPass

    before = await scrape(client)
    system.container.metrics().retained(RetentionPass(outbox=3, inbox=2, sync_records=5, customers_scrubbed=1, rows_scrubbed=4))
    after = await scrape(client)
    for table, n in (("outbox", 3), ("inbox", 2), ("sync_records", 5), ("dead_letters", 0)):
        moved = after.value("custsync_retention_rows_deleted_total", table=table) - before.value(
            "custsync_retention_rows_deleted_total", table=table
        )
        assert moved == n, table
    assert (
        after.value("custsync_retention_customers_scrubbed_total") - before.value("custsync_retention_customers_scrubbed_total")
        == 1
    )


async def test_the_exposition_names_its_charset_once(client):
    response = await client.get("/metrics")

    assert response.status_code == 200
    content_type = response.headers["content-type"]
    assert content_type.startswith("text/plain; version=") and content_type.count("charset") == 1, content_type
