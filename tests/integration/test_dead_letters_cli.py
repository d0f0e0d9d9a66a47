"""`custsync dlq list` and `custsync dlq replay` as an operator runs them, on PostgreSQL and Kafka,
against a real worker that dead-lettered a create the Stripe server refused."""

from __future__ import annotations

import json
import subprocess

import pytest

from domain.messages import OUTBOUND_TOPIC
from tests.integration.test_sync_pipeline import api_ready, read_topic, stripe_link
from tests.support.processes import wait_until
from tests.support.refusals import REFUSAL, stripe_refusing

pytestmark = pytest.mark.integration


def dead_letters(pipeline, *args: str) -> list[dict]:
    return json.loads(pipeline.processes.run("dlq", "list", "--json", *args).stdout)


async def test_a_refused_create_is_listed_then_replayed_after_the_fix_and_reaches_stripe(pipeline):
    pipeline.start_api()
    pipeline.start_worker()
    wait_until(lambda: api_ready(pipeline), what="the API")

    with stripe_refusing(pipeline.stripe.stripe):
        created = pipeline.http.post("/api/v1/customers", json={"name": "Ada", "email": "ada@example.com"}, timeout=5)
        customer_id = created.json()["id"]
        [letter] = wait_until(lambda: dead_letters(pipeline), timeout=60, step=0.5, what="the dead letter")
    assert (letter["topic"], letter["key"]) == (OUTBOUND_TOPIC, str(customer_id)) and REFUSAL in letter["error"]
    table = pipeline.processes.run("dlq", "list").stdout
    assert letter["event_id"] in table and "CreateRefused" in table

    replayed = pipeline.processes.run("dlq", "replay", "--id", str(letter["id"]))

    assert replayed.stdout.strip() == f"replayed 1 dead letter(s): {letter['id']}"
    link = wait_until(lambda: stripe_link(pipeline, customer_id), timeout=60, what="the Stripe link after the replay")
    assert list(pipeline.stripe.stripe.customers) == [link["external_id"]]
    first, again = await read_topic(pipeline.kafka, OUTBOUND_TOPIC, expected=2)
    assert again.envelope.event_id == first.envelope.event_id == letter["event_id"]
    assert again.envelope.payload == first.envelope.payload and again.envelope.error is None
    assert dead_letters(pipeline) == []
    [done] = dead_letters(pipeline, "--all")
    assert done["replayed_at"] is not None


async def test_replaying_an_unknown_id_fails_with_its_reason_and_all_with_nothing_is_a_no_op(pipeline):
    with pytest.raises(subprocess.CalledProcessError) as failed:
        pipeline.processes.run("dlq", "replay", "--id", "42")
    assert failed.value.returncode == 1
    assert "no dead letter with id 42 (nothing was replayed)" in failed.value.stderr
    assert pipeline.processes.run("dlq", "replay", "--all").stdout.strip() == "nothing to replay"
