"""``GET /ready`` on the in-memory backends: ready, with each check named; ``/health`` untouched."""

from litestar.testing import AsyncTestClient

from entrypoints.http.app import create_app
from tests.support.system import EmbeddedSystem


async def test_ready_on_the_in_memory_backends_names_its_checks():
    system = EmbeddedSystem()
    async with AsyncTestClient(create_app(system.container)) as http:
        response = await http.get("/ready")
        head = await http.head("/ready")
    assert response.status_code == 200 and head.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"broker": "ok"}}


async def test_ready_is_documented_with_its_503():
    system = EmbeddedSystem()
    async with AsyncTestClient(create_app(system.container)) as http:
        document = (await http.get("/schema/openapi.json")).json()
    assert set(document["paths"]["/ready"]["get"]["responses"]) >= {"200", "503"}


async def test_not_ready_is_a_503_naming_the_backend():
    class DownBroker:
        async def check(self, topics, timeout):
            raise ConnectionError("cannot reach the broker at 127.0.0.1:9")

    from dependency_injector import providers

    system = EmbeddedSystem()
    system.container.publisher.override(providers.Object(DownBroker()))
    async with AsyncTestClient(create_app(system.container)) as http:
        response = await http.get("/ready")
        health = await http.get("/health")
    assert response.status_code == 503 and health.status_code == 200
    assert response.json() == {"status": "not ready", "checks": {"broker": "cannot reach the broker at 127.0.0.1:9"}}
