"""Issue 9: outages become waits. Real `custsync api` and `worker` processes on PostgreSQL and
Kafka, against the HTTP Stripe test server; while changes flow from both sides, one system goes
down and comes back. Each run must end converged, with no dead letter, no duplicate (the soak's
divergence check: every customer has exactly one live twin carrying its id), and no process exit.

The services stopped here are the project's own (scripts/postgres.sh, scripts/kafka.sh): tests
run one at a time, and each outage restarts its service before it returns, even on failure.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import PIPELINE_WEBHOOK_SECRET
from tests.support.soak import Outage, Soak, kafka_outage, postgres_outage, stripe_outage

pytestmark = pytest.mark.integration


async def run_through(pipeline, outage: Outage, *, customers: int, operations: int, workers: int = 2):
    soak = Soak(
        processes=pipeline.processes,
        server=pipeline.stripe,
        api_url=pipeline.api_url,
        database_url=pipeline.database_url,
        secret=PIPELINE_WEBHOOK_SECRET,
        customers=customers,
        operations=operations,
        workers=workers,
        outage=outage,
    )
    report = await soak.run(converge_timeout=120)
    print("\n" + "\n".join(report.lines()))
    assert report.process_exits == []
    assert report.webhook_server_errors == 0
    assert report.dead_letters == 0
    assert report.divergences == [], report.divergences
    assert report.converge_seconds is not None
    return report


async def test_a_60s_stripe_outage_with_100_changes_from_both_sides_is_waited_out(pipeline):
    report = await run_through(pipeline, stripe_outage(pipeline.stripe, 60), customers=10, operations=100)
    assert pipeline.stripe.outage_answers > 0  # the worker did try, and was told to wait
    assert report.api_operations > 30 and report.stripe_operations > 30


async def test_postgresql_stopped_for_30s_and_restarted_is_waited_out(pipeline):
    report = await run_through(pipeline, postgres_outage(30), customers=10, operations=60)
    assert report.refused_during_outage > 0  # the API said 503 meanwhile, never 500


async def test_the_kafka_broker_stopped_for_30s_and_restarted_is_waited_out(pipeline):
    await run_through(pipeline, kafka_outage(30), customers=10, operations=60)
