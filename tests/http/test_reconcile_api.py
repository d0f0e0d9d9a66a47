"""``POST /api/v1/reconcile`` (queued for the worker's runner), the runs and their findings, and
``POST /api/v1/customers/{id}/resync``; bad input is a problem that changes nothing."""

from __future__ import annotations

import asyncio

import pytest

from application.sync.reconcile import run_reconciler
from domain.customer import CustomerData
from tests.http.helpers import assert_problem, create, url

RECONCILE = "/api/v1/reconcile"


async def run_queued(system) -> None:
    """The worker's runner, until the queued run is done."""
    stopping = asyncio.Event()

    async def context():
        return await system.context()

    async def stop_when_idle():
        for _ in range(200):
            await asyncio.sleep(0.01)
            async with system.uow_factory() as uow:
                if await uow.reconcile.active_run("stripe") is None:
                    break
        stopping.set()

    await asyncio.gather(
        run_reconciler(system.container.integrations(), context, system.clock, "runner", stopping, poll=0.01),
        stop_when_idle(),
    )


async def test_a_queued_run_is_executed_by_the_runner_and_its_findings_are_served(client, system):
    await system.stripe.create_async(params={"name": "Only there"})
    system.delivered = len(system.stripe.events)
    system.clock.advance(1)
    answer = await client.post(RECONCILE, json={"dry_run": True})
    assert answer.status_code == 202, answer.text
    run = answer.json()
    assert (run["status"], run["dry_run"], run["trigger"]) == ("queued", True, "api")
    assert answer.headers["location"] == f"{RECONCILE}/runs/{run['id']}"
    same = await client.post(RECONCILE, json={"dry_run": True})
    assert same.status_code == 202 and same.json()["id"] == run["id"]  # joined, not queued twice
    other = assert_problem(await client.post(RECONCILE, json={"match_by": "email"}), 409)
    assert other["active_run"] == run["id"]

    await run_queued(system)
    done = (await client.get(f"{RECONCILE}/runs/{run['id']}")).json()
    assert (done["status"], done["phase"], done["counts"]["only_there"]) == ("done", "done", 1)
    [finding] = (await client.get(f"{RECONCILE}/runs/{run['id']}/findings")).json()
    assert (finding["kind"], finding["fix"], finding["fix_status"]) == ("only_there", "import", "planned")
    assert (await client.get(f"{RECONCILE}/runs/{run['id']}/findings", params={"kind": "differs"})).json() == []
    assert [r["id"] for r in (await client.get(f"{RECONCILE}/runs")).json()] == [run["id"]]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"dry_run": "false"}, "dry_run"),  # no lenient booleans: "false" is not false
        ({"dry_run": 0}, "dry_run"),
        ({"match_by": "name"}, "match_by"),
        ({"system": "salesforce"}, "system"),
        ({"dry_run": True, "extra": 1}, None),
    ],
)
async def test_a_bad_reconcile_request_is_a_problem_and_queues_nothing(client, system, body, field):
    assert_problem(await client.post(RECONCILE, json=body), 422, field=field)
    async with system.uow_factory() as uow:
        assert await uow.reconcile.runs(None, 10) == []


@pytest.mark.parametrize("path", ["/runs/0", "/runs/99", "/runs/01", "/runs/x", "/runs/99/findings"])
async def test_an_unknown_run_is_a_404(client, path):
    assert_problem(await client.get(RECONCILE + path), 404)


async def test_resync_pushes_the_catalog_state_whatever_the_policy(client, system, synced_customer):
    customer_id = synced_customer["id"]
    external_id = (await system.mapping(customer_id)).external_id
    # Someone changed Stripe and its webhook was lost: the catalog is right, says the operator.
    system.stripe.customers[external_id]["name"] = "Wrong"
    answer = await client.post(f"{url(customer_id)}/resync", json={})
    assert answer.status_code == 202, answer.text
    event_id = answer.json()["event_id"]
    await system.settle()
    assert system.stripe.customers[external_id]["name"] == "Ada Lovelace"
    [record] = [r for r in await system.history(customer_id) if r.event_id == event_id]
    assert record.note == "pushed to stripe by an operator (resync): name"


async def test_resync_pull_takes_the_stripe_state_whatever_the_baselines(client, system, synced_customer):
    customer_id = synced_customer["id"]
    external_id = (await system.mapping(customer_id)).external_id
    system.stripe.customers[external_id]["email"] = "ada@lovelace.dev"  # no event at all
    answer = await client.post(f"{url(customer_id)}/resync", json={"direction": "pull"})
    assert answer.status_code == 202, answer.text
    await system.settle()
    assert (await system.customer(customer_id)).data == CustomerData("Ada Lovelace", "ada@lovelace.dev")
    assert (await system.mapping(customer_id)).in_sync_with(await system.customer(customer_id))


async def test_resync_of_what_cannot_be_resynced_is_a_problem(client, system):
    assert_problem(await client.post(f"{url(999)}/resync", json={}), 404)
    unlinked = await create(client, name="Bob")  # not synced yet: a pull has nothing to pull
    assert_problem(await client.post(f"{url(unlinked['id'])}/resync", json={"direction": "pull"}), 409)
    assert_problem(await client.post(f"{url(unlinked['id'])}/resync", json={"direction": "sideways"}), 422)
    assert_problem(await client.post(f"{url(unlinked['id'])}/resync", json={"system": "nope"}), 422, field="system")


async def test_every_integer_query_parameter_states_its_bounds_in_the_schema(client):
    """A bound the handler checks but the document omits makes a schema-valid request fail (a fuzzer's ST202):
    an optional ``int | None`` parameter loses its ``minimum`` in Litestar's schema, so none may be declared so."""
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    integers = [
        (path, parameter["name"], parameter["schema"])
        for path, operations in paths.items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and ("integer" in str(parameter["schema"]))
    ]
    assert any(name == "after" for _, name, _ in integers)
    for path, name, schema in integers:
        assert schema.get("type") == "integer" and "minimum" in schema and "maximum" in schema, (path, name, schema)
