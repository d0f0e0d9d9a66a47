"""``GET /api/v1/status``: the on-call screen as JSON, on the in-memory backends; and its text."""

from __future__ import annotations

import msgspec

from application.status import StatusReport
from entrypoints.status_screen import render
from tests.http.helpers import API_TOKEN, create


async def test_the_status_shows_the_backlog_then_the_failure_and_where_it_waits(client, system):
    await create(client, name="Ada", email="ada@example.com")
    waiting = (await client.get("/api/v1/status")).json()
    assert waiting["outbox_backlog"] == 1 and waiting["lag"] == {
        "catalog": {f"sync.inbound:{p}": 0 for p in range(6)},
        "stripe": {f"sync.outbound:{p}": 0 for p in range(6)},
    }
    [stripe] = waiting["integrations"]
    assert stripe["system"] == "stripe" and stripe["out_of_sync"]["unlinked"] == 1 and stripe["error_rate"] is None

    system.stripe.fail_next("create", 400)
    await system.settle()
    failed = (await client.get("/api/v1/status")).json()
    [stripe] = failed["integrations"]
    assert failed["outbox_backlog"] == 0 and failed["dead_letters_waiting"] == {"sync.outbound": 1}
    assert stripe["error_rate"] == 1.0 and "refused" in stripe["activity"]["last_error"]
    assert stripe["out_of_sync"]["dead"] == 1 and stripe["last_reconcile"] is None

    screen = render(msgspec.convert(failed, StatusReport))
    assert "dead letters  1 waiting (sync.outbound 1)" in screen
    assert "error rate      100.0% of the last hour's 1 change(s) failing" in screen
    assert "not in sync     unlinked 1, dead 1" in screen
    assert "consumer lag  sync.inbound to catalog 0, sync.outbound to stripe 0" in screen
    assert "outbound lag    0 change(s) not yet taken" in screen


async def test_each_system_s_outbound_lag_is_its_own(client, system):
    await create(client, name="Ada", email="ada@example.com")
    await system.relay()  # published, not yet taken by Stripe's group
    report = (await client.get("/api/v1/status")).json()
    assert sum(report["lag"]["stripe"].values()) == 1 and sum(report["lag"]["catalog"].values()) == 0
    screen = render(msgspec.convert(report, StatusReport))
    assert "consumer lag  sync.inbound to catalog 0, sync.outbound to stripe 1" in screen
    assert "outbound lag    1 change(s) not yet taken" in screen


async def test_the_status_needs_the_api_token_like_the_catalog(secured_client):
    assert (await secured_client.get("/api/v1/status")).status_code == 401
    ok = await secured_client.get("/api/v1/status", headers={"authorization": f"Bearer {API_TOKEN}"})
    assert ok.status_code == 200
