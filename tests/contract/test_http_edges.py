"""Hostile input over HTTP, on the in-memory storage and on PostgreSQL alike: what PostgreSQL
refuses (NUL in text, numbers beyond a bigint) must be a 4xx before it gets there, never a 500;
a saturated or unreachable database is a 503 with Retry-After."""

from __future__ import annotations

import json

import pytest
import stripe
from dependency_injector import providers
from sqlalchemy.engine import make_url

from adapters.postgres.engine import create_engine
from adapters.postgres.unit_of_work import SqlAlchemyUnitOfWorkFactory
from application.sync.dead_letters import list_dead_letters
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.contract.conftest import asgi_client
from tests.http.helpers import CUSTOMERS, JSON, STRIPE_WEBHOOK, assert_problem, url
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem

BIGINT_MAX = 2**63 - 1


async def create(api, **fields) -> dict:
    response = await api.post(CUSTOMERS, json=fields)
    assert response.status_code == 201, response.text
    return response.json()


async def customers(system) -> list:
    async with system.uow_factory() as uow:
        return await uow.customers.page(after_id=None, limit=100)


@pytest.mark.parametrize(
    "query, status",
    [
        ("email=a%00b", 422),
        ("email=%00", 422),
        ("email=a%0Db%40example.com", 422),
        ("cursor=YWZ0ZXI6MQ%00", 422),
        ("limit=5%00", 422),
        ("email=%ff", 200),
        ("email=%ed%a0%80", 200),
        ("email=%c0%80", 200),
        ("email=%F0%9F%98%80", 200),
        ("email=%E2%80%A8", 200),
        ("email=" + "x" * 1024, 200),
    ],
)
async def test_a_control_character_in_a_query_is_422_not_a_database_error(api, query, status):
    """Odd but printable filters (invalid UTF-8 is decoded with replacement characters, so no lone
    surrogate can reach the database) are answered; control characters are refused."""
    await create(api, name="Ada", email="ada@example.com")

    response = await api.get(f"{CUSTOMERS}?{query}")

    if status == 422:
        assert assert_problem(response, 422)["errors"][0]["reason"] == "must not contain control characters"
    else:
        assert response.status_code == 200 and response.json()["data"] == []


@pytest.mark.parametrize("spelling", ["+1", "01", "%201", "1_0", "١", str(BIGINT_MAX), str(BIGINT_MAX + 1), "9" * 40])
async def test_an_id_that_names_no_customer_is_404_on_every_route(api, spelling):
    await create(api, name="Ada")

    for method, suffix in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/sync-events")]:
        response = await api.request(method, f"{url(spelling)}{suffix}", json={} if method == "PATCH" else None)
        assert_problem(response, 404)


async def test_if_match_lists_and_weak_tags_on_real_storage(api):
    await create(api, name="Ada")

    assert (await api.patch(url(1), json={"name": "B"}, headers={"if-match": '"7", "1"'})).status_code == 200
    assert_problem(await api.patch(url(1), json={"name": "C"}, headers={"if-match": 'W/"2"'}), 412)
    assert (await api.delete(url(1), headers={"if-match": "*"})).status_code == 204


def deep(depth: int = 1000) -> str:
    return "[" * depth + "]" * depth


def event(customer: dict, *, event_id: str = "evt_1", created: str = "1767225600", kind: str = "customer.created") -> str:
    data = json.dumps({"object": {"id": "cus_1", "object": "customer", "name": "A", "email": None, **customer}})
    return f'{{"id": {json.dumps(event_id)}, "type": "{kind}", "created": {created}, "data": {data}}}'


HOSTILE_EVENTS = {
    "metadata-list": (event({"metadata": ["internal_id", "1"]}), 200),
    "metadata-string": (event({"metadata": "internal_id=1"}), 200),
    "metadata-nul-value": (event({"metadata": {"internal_id": "1\x00", "custsync_installation": "\x00"}}), 200),
    "created-1e15-int": (event({}, created="1000000000000000"), 200),
    "created-minus-1e12-int": (event({}, created="-1000000000000"), 200),
    "created-1e15-float": (event({}, created="1e15"), 400),
    "created-minus-1e12-float": (event({}, created="-1e12"), 400),
    "created-beyond-int64": (event({}, created="99999999999999999999999"), 200),
    "deep-in-object": (event({"x": "DEEP"}).replace('"DEEP"', deep()), 400),
    "event-id-nul": (event({}, event_id="evt_\x001"), 400),
    "event-id-lone-surrogate": (event({}).replace('"evt_1"', '"evt_\\ud800"'), 400),
    "customer-id-nul": (event({"id": "cus_\x00"}), 200),
    "name-nul": (event({"name": "A\x00da"}), 200),
    "name-lone-surrogate": (event({}).replace('"name": "A"', '"name": "A\\udfff"'), 400),
    "deleted-kind-nul-name": (event({"name": "\x00"}, kind="customer.deleted"), 200),
}


@pytest.mark.parametrize("payload, status", HOSTILE_EVENTS.values(), ids=HOSTILE_EVENTS.keys())
async def test_a_signed_hostile_webhook_is_400_or_acknowledged_never_5xx(api, api_system, payload, status):
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)

    response = await api.post(STRIPE_WEBHOOK, content=payload.encode(), headers={"stripe-signature": header})

    assert response.status_code == status, response.text
    if status == 400:
        assert_problem(response, 400)
    elif response.json()["rejected"] is not None:
        [letter] = [d for d in await list_dead_letters(api_system.uow_factory(), 10) if d.topic == "webhooks.rejected"]
        assert letter.event_id == "evt_1"
    await api_system.settle()
    assert all("\x00" not in (c.data.name or "") for c in await customers(api_system))


# -- PostgreSQL unavailable: 503 with Retry-After ---------------------------------------------------


@pytest.fixture
async def tiny_pool(postgres_url, pg_engine):
    """An engine of one connection (and one overflow) that gives up waiting for a free one at once."""
    engine = create_engine(postgres_url, pool_size=1, pool_timeout=0.05)
    yield engine
    await engine.dispose()


def app_on(engine):
    """The production app over ``engine`` (the in-memory broker and Stripe stand-in)."""
    system = EmbeddedSystem(Settings(database_url="postgresql+asyncpg://unused/unused", stripe_webhook_secret=WEBHOOK_SECRET))
    system.container.uow_factory.override(providers.Object(SqlAlchemyUnitOfWorkFactory(engine)))
    return system, create_app(system.container)


async def test_an_exhausted_pool_is_a_503_with_retry_after_and_the_api_recovers(tiny_pool):
    system, app = app_on(tiny_pool)
    async with asgi_client(app) as api:
        await create(api, name="Ada")
        async with system.uow_factory() as first, system.uow_factory() as second:  # every connection held
            assert first is not second
            for method, path, body in [
                ("GET", url(1), None),
                ("GET", CUSTOMERS, None),
                ("POST", CUSTOMERS, {"name": "B"}),
                ("PATCH", url(1), {"name": "B"}),
                ("POST", "/api/v1/dead-letters/replay", {"all": True}),
            ]:
                response = await api.request(method, path, json=body)
                problem = assert_problem(response, 503)
                assert int(response.headers["retry-after"]) >= 1
                assert "database" in problem["detail"] and "asyncpg" not in response.text

        assert (await api.get(url(1))).status_code == 200
        assert [c.data.name for c in await customers(system)] == ["Ada"]


async def test_an_unreachable_database_is_a_503_with_retry_after(postgres_url, unused_tcp_port):
    engine = create_engine(make_url(postgres_url).set(port=unused_tcp_port).render_as_string(hide_password=False), pool_size=1)
    try:
        _, app = app_on(engine)
        async with asgi_client(app) as api:
            response = await api.post(CUSTOMERS, json={"name": "Ada"})
        assert_problem(response, 503)
        assert int(response.headers["retry-after"]) >= 1
        assert str(unused_tcp_port) not in response.text
    finally:
        await engine.dispose()


async def test_a_webhook_when_the_database_is_saturated_is_still_accepted_it_needs_no_connection(tiny_pool):
    system, app = app_on(tiny_pool)
    payload = event({})
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)
    async with asgi_client(app) as api, system.uow_factory(), system.uow_factory():  # every pooled connection held
        response = await api.post(STRIPE_WEBHOOK, content=payload.encode(), headers={"stripe-signature": header, **JSON})
    assert response.status_code == 200 and response.json()["event_id"] == "evt_1"
    assert [m.event_id for m in system.messages("sync.inbound")] == ["evt_1"]
