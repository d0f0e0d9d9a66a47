"""Every integration adapter, each over the stand-in of its system, with what a person (or an
admin) does over there -- for the integration contract suite (tests/contract/test_integration_contract.py).

A third integration adds one harness here: the suite is its checklist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import httpx
import respx

from adapters.memory.clock import FakeClock
from adapters.memory.salesforce import InMemorySalesforce
from adapters.memory.stripe import InMemoryStripe
from adapters.salesforce.auth import ClientCredentials
from adapters.salesforce.contacts import contact_fields
from adapters.salesforce.integration import SalesforceIntegration
from adapters.stripe.integration import StripeIntegration
from adapters.stripe.sdk import stripe_client
from application.ports import Integration
from domain.customer import CustomerData
from tests.support.stripe_server import StripeServer, _params

SALESFORCE_URL = "https://custsync-contract.my.salesforce.com"


class Harness(Protocol):
    name: str
    integration: Integration
    clock: FakeClock
    min_page: int  # the smallest page the system's list answers with

    async def person_creates(self, data: CustomerData) -> str: ...

    async def person_edits(self, external_id: str, data: CustomerData) -> None: ...

    async def person_deletes(self, external_id: str) -> None: ...

    def refuse_writes(self) -> None:
        """An admin's rule (or the system's validation) refuses every write from now on."""

    def fail_next(self, operation: str) -> None:
        """The next ``operation`` (create, update, delete, retrieve) answers a server error."""

    def unknown_id(self) -> str:
        """A well-formed id this account never had."""


class StripeHarness:
    min_page = 1

    def __init__(self, name: str, stripe: InMemoryStripe, integration: StripeIntegration, clock: FakeClock) -> None:
        self.name, self.stripe, self.integration, self.clock = name, stripe, integration, clock

    async def person_creates(self, data: CustomerData) -> str:
        return (await self.stripe.create_async(params=_stripe_params(data)))["id"]

    async def person_edits(self, external_id: str, data: CustomerData) -> None:
        await self.stripe.update_async(external_id, params={k: v or "" for k, v in _stripe_params(data).items()})

    async def person_deletes(self, external_id: str) -> None:
        await self.stripe.delete_async(external_id)

    def refuse_writes(self) -> None:
        self.stripe.refuse(lambda params: True)

    def fail_next(self, operation: str) -> None:
        self.stripe.fail_next(operation, 500 if operation == "retrieve" else 503)

    def unknown_id(self) -> str:
        return "cus_00000000000000"


class SalesforceHarness:
    min_page = 200

    def __init__(self, name: str, org: InMemorySalesforce, integration: SalesforceIntegration, clock: FakeClock) -> None:
        self.name, self.org, self.integration, self.clock = name, org, integration, clock

    async def person_creates(self, data: CustomerData) -> str:
        return self.org.create(**contact_fields(data))["Id"]

    async def person_edits(self, external_id: str, data: CustomerData) -> None:
        self.org.edit(external_id, **contact_fields(data))

    async def person_deletes(self, external_id: str) -> None:
        self.org.delete(external_id)

    def refuse_writes(self) -> None:
        self.org.refuse(lambda fields: True)

    def fail_next(self, operation: str) -> None:
        self.org.fail_next(operation, 503)

    def unknown_id(self) -> str:
        return "003000000000000AAA"


def _stripe_params(data: CustomerData) -> dict[str, Any]:
    return {k: v for k, v in (("name", data.name), ("email", data.email)) if v is not None}


@asynccontextmanager
async def harness(kind: str) -> AsyncIterator[Harness]:
    clock = FakeClock()
    if kind == "stripe-memory":
        stripe = InMemoryStripe(clock, account_id="acct_contract")
        yield StripeHarness(kind, stripe, StripeIntegration(stripe, []), clock)
    elif kind == "stripe-sdk-respx":
        server = StripeServer()
        server.stripe = InMemoryStripe(clock, account_id="acct_contract")

        async def answer(request: httpx.Request) -> httpx.Response:
            parts = request.url.path.strip("/").split("/")
            status, payload, headers = await server._route(
                server.stripe,
                request.method,
                parts,
                _params(request.content),
                request.headers.get("idempotency-key"),
                request.url.query,
            )
            return httpx.Response(status, json=payload, headers={"Request-Id": "req_contract", **headers})

        with respx.mock(assert_all_called=False) as mock:
            mock.route(host="api.stripe.com").mock(side_effect=answer)
            client = stripe_client("sk_test_contract", timeout=5)
            integration = StripeIntegration(
                client.v1.customers, [], accounts=client.v1.accounts, events=client.v1.events, raw=client, mode="test"
            )
            yield StripeHarness(kind, server.stripe, integration, clock)
    elif kind in ("salesforce-memory", "salesforce-respx"):
        org = InMemorySalesforce(clock, instance_url=SALESFORCE_URL, client_id="contract", client_secret="secret")
        if kind == "salesforce-memory":
            async with httpx.AsyncClient(transport=httpx.MockTransport(org.handle)) as http:
                credentials = ClientCredentials(http, SALESFORCE_URL, "contract", "secret")
                yield SalesforceHarness(kind, org, SalesforceIntegration(http, credentials), clock)
        else:
            with respx.mock(assert_all_called=False) as mock:
                mock.route(host="custsync-contract.my.salesforce.com").mock(side_effect=org.handle)
                async with httpx.AsyncClient() as http:
                    credentials = ClientCredentials(http, SALESFORCE_URL, "contract", "secret")
                    yield SalesforceHarness(kind, org, SalesforceIntegration(http, credentials), clock)
    else:
        raise ValueError(kind)


KINDS = ["stripe-memory", "stripe-sdk-respx", "salesforce-memory", "salesforce-respx"]
