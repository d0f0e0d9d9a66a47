"""One system's outage holds up no other: each integration's outbound changes are read by its own
consumer group (application.sync.groups), with its own offsets, lanes and backoff."""

from __future__ import annotations

import asyncio
import inspect

import httpx

from adapters.salesforce.auth import ClientCredentials
from adapters.salesforce.integration import SalesforceIntegration
from application.commands import CreateCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.update import patch_customer
from application.sync.groups import CATALOG, sync_groups
from domain.messages import INBOUND_TOPIC, OUTBOUND_TOPIC
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem


class Outage:
    """The org behind a switch: while ``down``, every API call answers 503 (the token still comes)."""

    def __init__(self, org) -> None:
        self.org, self.down, self.refused = org, False, 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down and "/oauth2/" not in request.url.path:
            self.refused += 1
            return httpx.Response(503, json=[{"errorCode": "SERVER_UNAVAILABLE", "message": "down for maintenance"}])
        return self.org.handle(request)


async def eventually(predicate, what: str, seconds: float = 10.0) -> None:
    """``predicate()`` true (or, awaitable, true once awaited) within ``seconds``."""
    for _ in range(int(seconds / 0.02)):
        result = predicate()
        if await result if inspect.isawaitable(result) else result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {seconds}s: {what}")


def test_the_worker_reads_inbound_with_its_group_and_outbound_with_one_group_per_system():
    groups = sync_groups("custsync-worker", ("stripe", "salesforce"))
    assert [(g.name, g.group_id, g.topics) for g in groups] == [
        (CATALOG, "custsync-worker", (INBOUND_TOPIC,)),
        ("stripe", "custsync-worker.stripe", (OUTBOUND_TOPIC,)),
        ("salesforce", "custsync-worker.salesforce", (OUTBOUND_TOPIC,)),
    ]


async def test_changes_made_while_salesforce_is_down_reach_stripe_at_once_and_salesforce_once_it_is_back():
    system = EmbeddedSystem(Settings(stripe_webhook_secret=WEBHOOK_SECRET, integrations="stripe,salesforce"))
    org = system.container.salesforce_org()
    outage = Outage(org)
    http = httpx.AsyncClient(transport=httpx.MockTransport(outage.handle))
    system.use_integration(
        "salesforce", SalesforceIntegration(http, ClientCredentials(http, org.instance_url, "custsync-dev", "custsync-dev"))
    )
    uow = system.uow_factory
    customer = await create_customer(CreateCustomer("Ada Lovelace", "ada@example.com"), uow(), system.clock)
    await system.settle()
    stripe_id = (await system.mapping(customer.id, "stripe")).external_id
    contact_id = (await system.mapping(customer.id, "salesforce")).external_id

    outage.down = True
    stopping = asyncio.Event()
    worker = asyncio.create_task(system.consumer.run(stopping))
    try:
        await patch_customer(PatchCustomer(customer_id=customer.id, changes={"email": "ada@lovelace.org"}), uow(), system.clock)
        await system.relay()
        await eventually(lambda: system.stripe.customers[stripe_id]["email"] == "ada@lovelace.org", "the email in Stripe")
        await eventually(lambda: outage.refused >= 2, "Salesforce's group retrying")
        # A second change of the same customer while the first still waits for Salesforce.
        await patch_customer(PatchCustomer(customer_id=customer.id, changes={"name": "Ada King"}), uow(), system.clock)
        await system.relay()
        await eventually(lambda: system.stripe.customers[stripe_id]["name"] == "Ada King", "the name in Stripe")
        assert set(system.consumer.waiting()) == {"salesforce"}  # only Salesforce's group waits
        held = org.shown(org.contacts[contact_id])
        assert (held["LastName"], held["Email"]) == ("Lovelace", "ada@example.com")
        lag = system.container.consumer_lag()

        async def lag_of(group: str) -> int:
            return sum(n for (name, _, _), n in (await lag.lag()).items() if name == group)

        async def stripe_committed() -> bool:
            return await lag_of("stripe") == 0

        await eventually(stripe_committed, "Stripe's group committed")  # at its next turn
        assert await lag_of("salesforce") == 2  # both changes wait for Salesforce, on its group's offsets

        outage.down = False
        await eventually(
            lambda: (
                (
                    org.shown(org.contacts[contact_id])["FirstName"],
                    org.shown(org.contacts[contact_id])["LastName"],
                    org.shown(org.contacts[contact_id])["Email"],
                )
                == ("Ada", "King", "ada@lovelace.org")
            ),
            "Salesforce converged after the outage",
            seconds=40,
        )
    finally:
        stopping.set()
        await asyncio.wait_for(worker, 10)
    await system.settle()
    assert system.consumer.waiting() == {}
    for system_name in ("stripe", "salesforce"):
        mapping = await system.mapping(customer.id, system_name)
        assert mapping.synced_version == (await system.customer(customer.id)).version
