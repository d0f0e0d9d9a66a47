"""``GET /ready`` on real PostgreSQL and Kafka: ready when both answer (schema at head, sync topics
there), 503 naming the backend otherwise -- a database that cannot be reached, one not migrated,
missing topics. The topics of the pipeline's broker are created by the pipeline fixture."""

from __future__ import annotations

import pytest

from entrypoints.container import build_container
from entrypoints.http.ready import readiness
from entrypoints.lifecycle import running
from entrypoints.settings import load_settings
from tests.support.infra import recreate_database


def container_on(database_url: str, kafka: str):
    return build_container(
        load_settings(
            {},
            database_url=database_url,
            kafka_bootstrap_servers=kafka,
            stripe_secret_key="sk_test_ready",
            stripe_api_base="http://127.0.0.1:9",
            api_auth="none",
        )
    )


async def ready(container, *, start: bool = True) -> tuple[str, dict[str, str]]:
    """What ``GET /ready`` answers (its status code follows ``status``: tests/http/test_ready.py),
    run on this test's loop, where the producer lives."""
    if start:
        async with running(container, wait=False):
            found = await readiness(container)
    else:
        await container.publisher().start()
        try:
            found = await readiness(container)
        finally:
            await container.publisher().stop()
            await container.engine().dispose()
    return found.status, found.checks


async def test_ready_when_postgres_and_kafka_answer(pipeline):
    assert await ready(container_on(pipeline.database_url, pipeline.kafka)) == ("ready", {"postgres": "ok", "kafka": "ok"})


@pytest.mark.parametrize("case", ["unreachable", "unmigrated"])
async def test_not_ready_names_the_database(pipeline, case):
    url = (
        "postgresql+asyncpg://custsync:custsync@127.0.0.1:1/nowhere"
        if case == "unreachable"
        else await recreate_database(pipeline.database_url, "custsync_it_ready_unmigrated")
    )
    status, checks = await ready(container_on(url, pipeline.kafka), start=False)
    assert status == "not ready" and checks["kafka"] == "ok"
    assert ("cannot reach the database" if case == "unreachable" else "not migrated") in checks["postgres"]


async def test_not_ready_names_missing_topics(pipeline):
    container = container_on(pipeline.database_url, pipeline.kafka)
    async with running(container, wait=False):
        publisher = container.publisher()
        with pytest.raises(Exception, match=r"topics missing: no\.such\.topic"):
            await publisher.check(["sync.outbound", "no.such.topic"], 2.0)


def test_the_workers_operations_listener_answers_health_ready_and_metrics(pipeline):
    import httpx

    from tests.support.processes import wait_until
    from tests.support.stripe_server import free_port

    port = free_port()
    pipeline.processes.start("worker", METRICS_PORT=str(port))
    base = f"http://127.0.0.1:{port}"

    def get(path: str):
        try:
            return httpx.get(base + path, timeout=3)
        except httpx.TransportError:
            return None

    wait_until(lambda: get("/health") is not None, 30, 0.1, "the worker's listener up")
    assert get("/health").json() == {"status": "healthy"}
    ready = wait_until(lambda: (r := get("/ready")) is not None and r.status_code == 200 and r, 30, 0.2, "the worker ready")
    assert ready.json() == {"status": "ready", "checks": {"postgres": "ok", "kafka": "ok"}}
    metrics = get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "process_cpu_seconds_total" in metrics.text
