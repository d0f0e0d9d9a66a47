"""Issue 5 (c), small: the whole system under faults converges, on real PostgreSQL and Kafka."""

from __future__ import annotations

import pytest

from tests.integration.conftest import PIPELINE_WEBHOOK_SECRET
from tests.support.soak import Soak

pytestmark = pytest.mark.integration


async def test_both_sides_converge_under_faults_kills_and_messy_webhooks(pipeline):
    pipeline.stripe.fault_rate = 0.1  # 429s and 500s for a tenth of the worker's Stripe calls
    pipeline.processes.env["WORKER_MAX_ATTEMPTS"] = "10"
    soak = Soak(
        processes=pipeline.processes,
        server=pipeline.stripe,
        api_url=pipeline.api_url,
        database_url=pipeline.database_url,
        secret=PIPELINE_WEBHOOK_SECRET,
        customers=25,
        operations=150,
        workers=2,
        kill_every=40,
    )
    report = await soak.run(converge_timeout=90)
    print("\n".join(report.lines()))
    assert report.worker_kills >= 3 and report.stripe_faults_injected > 0
    assert report.webhook_deliveries > report.stripe_operations  # repeats happened
    assert report.divergences == [], report.divergences
    assert report.dead_letters == 0
    assert report.converge_seconds is not None
