"""Issue 12 on the real stack: `custsync api` and `worker` processes on PostgreSQL and Kafka, against
the HTTP Stripe test server. The metrics move as changes travel (scraped from both processes),
`custsync status` reads the same picture, and `/ready` flips to 503 -- naming the backend -- when
PostgreSQL or the Kafka broker is really stopped, and back to 200 once it returns.

The services stopped here are the project's own (scripts/postgres.sh, scripts/kafka.sh), restarted
before each test returns, even on failure (as in test_outages)."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.integration.test_sync_pipeline import api_ready, stripe_link
from tests.support.processes import CUSTSYNC, wait_until
from tests.support.scrape import Scrape
from tests.support.soak import kafka_outage, postgres_outage
from tests.support.stripe_server import free_port

pytestmark = pytest.mark.integration


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=3)
    except httpx.TransportError:
        return None


def scrape(url: str) -> Scrape:
    response = httpx.get(f"{url}/metrics", timeout=3)
    assert response.status_code == 200
    return Scrape(response.text)


def start(pipeline) -> str:
    """The API and a worker with its operations listener; the worker's base URL."""
    port = free_port()
    pipeline.start_api()
    pipeline.processes.start("worker", METRICS_PORT=str(port), METRICS_INTERVAL="1")
    worker = f"http://127.0.0.1:{port}"
    wait_until(lambda: api_ready(pipeline), what="the API")
    wait_until(lambda: (r := get(f"{worker}/ready")) is not None and r.status_code == 200, timeout=60, what="the worker ready")
    return worker


async def test_metrics_move_on_both_processes_and_the_status_reads_the_same_picture(pipeline):
    worker = start(pipeline)
    before = scrape(worker)
    created = pipeline.http.post("/api/v1/customers", json={"name": "Ada", "email": "ada@example.com"})
    customer_id = created.json()["id"]
    wait_until(lambda: stripe_link(pipeline, customer_id), timeout=60, what="the Stripe link")

    def synced() -> Scrape | None:
        now = scrape(worker)
        moved = now.value("custsync_deliveries_total", topic="sync.outbound", outcome="synced") > before.value(
            "custsync_deliveries_total", topic="sync.outbound", outcome="synced"
        )
        sampled = now.value("custsync_status_sampled_timestamp_seconds") > 0
        return now if moved and sampled and now.value("custsync_consumer_lag_messages") == 0 else None

    after = wait_until(synced, timeout=30, step=0.5, what="the worker's figures")
    assert after.value("custsync_sync_latency_seconds_count", direction="outbound", system="stripe") >= 1
    assert after.value("custsync_external_requests_total", system="stripe", method="customers.create", status_class="2xx") >= 1
    assert after.value("custsync_rate_limit_wait_seconds_count", system="stripe") >= 1
    assert after.value("custsync_outbox_backlog_events") == 0
    lag = {(s.labels["system"], s.labels["topic"]) for s in after.samples if s.name == "custsync_consumer_lag_messages"}
    assert lag == {("catalog", "sync.inbound"), ("stripe", "sync.outbound")}  # read from the broker, per group

    forged = pipeline.http.post("/api/v1/webhooks/stripe", content=b"{}", headers={"stripe-signature": "t=1,v1=00"})
    assert forged.status_code == 400
    api = scrape(pipeline.api_url)  # the API's own: its webhooks, and process figures
    assert api.value("custsync_webhooks_rejected_total", system="stripe", reason="signature") == 1
    assert api.value("process_cpu_seconds_total") > 0

    report = json.loads(pipeline.processes.run("status", "--json").stdout)
    [stripe] = report["integrations"]
    assert report["outbox_backlog"] == 0 and report["lag_error"] is None
    assert {group: sum(lag.values()) for group, lag in report["lag"].items()} == {"catalog": 0, "stripe": 0}
    assert stripe["activity"]["last_outbound"] is not None and stripe["out_of_sync"]["unlinked"] == 0
    screen = pipeline.processes.run("status").stdout
    assert "outbox        0 change(s) not yet published" in screen and "\nstripe\n" in screen


@pytest.mark.parametrize(("outage", "backend"), [(postgres_outage, "postgres"), (kafka_outage, "kafka")])
async def test_ready_flips_to_503_naming_the_backend_that_stopped_and_back(pipeline, outage, backend):
    worker = start(pipeline)
    stop = outage(0)
    await stop.begin()
    try:

        def not_ready(url: str) -> dict | None:
            response = get(f"{url}/ready")
            if response is None or response.status_code != 503:
                return None
            return response.json()

        for url in (pipeline.api_url, worker):
            body = wait_until(lambda url=url: not_ready(url), timeout=30, step=0.5, what=f"{url}/ready to say 503")
            assert body["status"] == "not ready" and body["checks"][backend] != "ok", body
            assert (get(f"{url}/health")).status_code == 200  # liveness stays: nothing to restart for
    finally:
        await stop.end()
    for url in (pipeline.api_url, worker):
        wait_until(
            lambda url=url: (r := get(f"{url}/ready")) is not None and r.status_code == 200,
            timeout=90,
            step=0.5,
            what=f"{url}/ready back to 200",
        )


async def test_json_logs_follow_a_change_from_the_request_to_the_stripe_call_and_its_request_id(pipeline):
    port = free_port()
    pipeline.processes.start("api", "--port", str(port), LOG_FORMAT="json")
    worker = pipeline.processes.start("worker", LOG_FORMAT="json")
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {pipeline.api_token}"}, timeout=5)
    try:
        wait_until(
            lambda: (r := get(f"http://127.0.0.1:{port}/ready")) is not None and r.status_code == 200,
            timeout=60,
            what="the API ready",
        )
        created = api.post(
            "/api/v1/customers", json={"name": "Ada", "email": "ada@example.com"}, headers={"X-Request-Id": "it-change-1"}
        )
        assert created.headers["x-request-id"] == "it-change-1"
        customer_id = created.json()["id"]

        def traced() -> list[dict] | None:
            lines = [json.loads(line) for line in pipeline.processes.log(worker).splitlines() if line.strip()]
            mine = [line for line in lines if line.get("correlation_id") == "it-change-1"]
            calls = [line for line in mine if line["message"].startswith("stripe customers.create")]
            return mine if calls and any(line.get("outcome") == "synced" for line in mine) else None

        mine = wait_until(traced, timeout=60, step=0.5, what="the change's lines in the worker's JSON log")
    finally:
        api.close()
    [call] = [line for line in mine if line["message"].startswith("stripe customers.create")]
    assert call["stripe_request_id"].startswith("req_") and call["status"] == 200
    assert call["level"] == "INFO" and call["time"].endswith("+00:00")
    [delivered] = [line for line in mine if line.get("outcome") == "synced"]
    assert delivered["topic"] == "sync.outbound" and delivered["customer_id"] == customer_id
    assert {"partition", "offset", "event_id"} <= set(delivered) and delivered["outcome"] == "synced"


def test_the_status_screen_answers_while_kafka_is_down_with_the_lag_unknown(pipeline):
    """On-call reads the screen when something is wrong: Kafka unreachable is one of its lines, not
    a refusal of the whole command."""
    result = subprocess.run(
        [CUSTSYNC, "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**pipeline.processes.env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
    )
    assert result.returncode == 0, result.stderr
    assert "consumer lag  unknown: cannot read the consumer lag from 127.0.0.1:9" in result.stdout
    assert "outbox        0 change(s) not yet published" in result.stdout
    assert "Traceback" not in result.stderr and "aiokafka" not in result.stderr
