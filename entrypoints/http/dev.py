"""Dev-only routes that act *on the other side* -- the in-memory Stripe as its dashboard would,
the in-memory Salesforce org as a person in it would -- so that a newcomer can watch inbound sync.
Mounted only by ``custsync dev``, for each stand-in it runs (no key / no instance URL)."""

from __future__ import annotations

from typing import Any

import msgspec
import stripe
from litestar import Controller, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_404_NOT_FOUND, HTTP_422_UNPROCESSABLE_ENTITY

from adapters.memory.salesforce import Refused
from entrypoints.http.deps import FakeSalesforceDep, FakeStripeDep
from entrypoints.http.guards import api_request
from entrypoints.http.problems import problem
from entrypoints.http.types import AnyRequest


class StripeSideChange(msgspec.Struct, forbid_unknown_fields=True):
    name: str | None = None
    email: str | None = None
    metadata: dict[str, str] | None = None

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}


def _refused_by_stripe(_: AnyRequest, exc: stripe.InvalidRequestError) -> Response[Any]:
    """What the fake Stripe refuses (no such customer, invalid email...) is the caller's error, not a 500."""
    reason = str(exc.user_message or exc)
    if exc.http_status == HTTP_404_NOT_FOUND:
        return problem(HTTP_404_NOT_FOUND, "Not found", reason)
    return problem(
        HTTP_422_UNPROCESSABLE_ENTITY, "Refused by Stripe", reason, errors=[{"field": exc.param or "body", "reason": reason}]
    )


class FakeStripeController(Controller):
    path = "/dev/stripe/customers"
    tags = ("dev: the fake Stripe side",)
    # Changes made here reach the catalog through sync, so they need the catalog's token too.
    guards = (api_request,)
    exception_handlers = {stripe.InvalidRequestError: _refused_by_stripe}  # noqa: RUF012 - the controller configuration Litestar reads

    @get("/", summary="Customers as the in-memory Stripe holds them, newest first")
    async def list_stripe_customers(self, fake_stripe: FakeStripeDep) -> dict[str, Any]:
        return await fake_stripe.list_async(params={"limit": 100})

    @post("/", status_code=HTTP_201_CREATED, summary="Create a customer on the Stripe side")
    async def create_stripe_customer(self, data: JSONBody[StripeSideChange], fake_stripe: FakeStripeDep) -> dict[str, Any]:
        return await fake_stripe.create_async(params=data.params())

    @patch("/{customer_id:str}", summary="Change a customer on the Stripe side, as the dashboard would")
    async def update_stripe_customer(
        self, customer_id: FromPath[str], data: JSONBody[StripeSideChange], fake_stripe: FakeStripeDep
    ) -> dict[str, Any]:
        return await fake_stripe.update_async(customer_id, params=data.params())

    @delete("/{customer_id:str}", status_code=200, summary="Delete a customer on the Stripe side")
    async def delete_stripe_customer(self, customer_id: FromPath[str], fake_stripe: FakeStripeDep) -> dict[str, Any]:
        return await fake_stripe.delete_async(customer_id)


class SalesforceSideContact(msgspec.Struct, forbid_unknown_fields=True):
    """A Contact's fields as a person edits them (LastName is required on a create)."""

    FirstName: str | None = None
    LastName: str | None = None
    Email: str | None = None

    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}


def _refused_by_salesforce(_: AnyRequest, exc: Refused) -> Response[Any]:
    if exc.status == HTTP_404_NOT_FOUND:
        return problem(HTTP_404_NOT_FOUND, "Not found", f"{exc.code}: {exc.message}")
    errors = [{"field": field, "reason": f"{exc.code}: {exc.message}"} for field in exc.fields] or [
        {"field": "body", "reason": f"{exc.code}: {exc.message}"}
    ]
    return problem(HTTP_422_UNPROCESSABLE_ENTITY, "Refused by Salesforce", f"{exc.code}: {exc.message}", errors=errors)


class FakeSalesforceController(Controller):
    path = "/dev/salesforce/contacts"
    tags = ("dev: the fake Salesforce side",)
    guards = (api_request,)
    exception_handlers = {Refused: _refused_by_salesforce}  # noqa: RUF012 - the controller configuration Litestar reads

    @get("/", summary="Contacts as the in-memory Salesforce org holds them (deleted ones left out)")
    async def list_salesforce_contacts(self, fake_salesforce: FakeSalesforceDep) -> list[dict[str, Any]]:
        return [fake_salesforce.shown(c) for c in fake_salesforce.live()]

    @post("/", status_code=HTTP_201_CREATED, summary="Create a Contact, as a person in the org would")
    async def create_salesforce_contact(
        self, data: JSONBody[SalesforceSideContact], fake_salesforce: FakeSalesforceDep
    ) -> dict[str, Any]:
        return fake_salesforce.shown(fake_salesforce.create(**data.fields()))

    @patch("/{contact_id:str}", summary="Change a Contact, as a person in the org would (the worker sees it at its next poll)")
    async def update_salesforce_contact(
        self, contact_id: FromPath[str], data: JSONBody[SalesforceSideContact], fake_salesforce: FakeSalesforceDep
    ) -> dict[str, Any]:
        return fake_salesforce.shown(fake_salesforce.edit(contact_id, **data.fields()))

    @delete("/{contact_id:str}", status_code=200, summary="Delete a Contact (it goes to the Recycle Bin)")
    async def delete_salesforce_contact(self, contact_id: FromPath[str], fake_salesforce: FakeSalesforceDep) -> dict[str, Any]:
        fake_salesforce.delete(contact_id)
        return {"id": contact_id, "deleted": True}
