"""``/api/v1/customers``: the catalog's CRUD, its pagination, and each customer's sync history."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.exceptions import ValidationException
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from application.commands import CreateCustomer, DeleteCustomer, ListCustomers, PatchCustomer, ReplaceCustomer
from application.customers.create import create_customer
from application.customers.delete import delete_customer
from application.customers.queries import MAX_PAGE_SIZE, get_customer, list_customers, sync_history
from application.customers.update import patch_customer, replace_customer
from domain.customer import Customer
from entrypoints.http.deps import ClockDep, SystemsDep, UowDep
from entrypoints.http.guards import json_body, requires_api_token
from entrypoints.http.schemas import CustomerCreate, CustomerOut, CustomerPageOut, CustomerPatch, CustomerReplace, SyncEventOut

IfMatch = Annotated[str | None, HeaderParameter(name="If-Match", description='The ETag from a GET ("<version>"); 412 if stale.')]
CustomerId = Annotated[int, PathParameter(description="The catalog's integer id.")]


class CustomerController(Controller):
    path = "/api/v1/customers"
    tags = ["customers"]
    guards = [requires_api_token, json_body]

    @get("/", summary="List customers, oldest first")
    async def list_customers(
        self,
        uow: UowDep,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 50,
        cursor: Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page.")] = None,
        email: Annotated[str | None, QueryParameter(max_length=1024, description="Exact match, case-insensitive.")] = None,
    ) -> CustomerPageOut:
        page = await list_customers(ListCustomers(limit=limit, after_id=_decode_cursor(cursor), email=email), uow)
        next_cursor = _encode_cursor(page.next_after_id) if page.next_after_id is not None else None
        return CustomerPageOut([CustomerOut.of(c) for c in page.customers], limit, next_cursor)

    @post("/", summary="Create a customer", status_code=HTTP_201_CREATED)
    async def create_customer(self, data: JSONBody[CustomerCreate], uow: UowDep, clock: ClockDep) -> Response[CustomerOut]:
        customer = await create_customer(CreateCustomer(name=data.name, email=data.email), uow, clock)
        return _one(customer, HTTP_201_CREATED, location=True)

    @get("/{customer_id:int}", summary="Get a customer with its links to external systems")
    async def get_customer(self, customer_id: CustomerId, uow: UowDep, systems: SystemsDep) -> Response[CustomerOut]:
        view = await get_customer(customer_id, uow, systems)
        return Response(CustomerOut.of(view.customer, view), headers={"ETag": _etag(view.customer)})

    @put("/{customer_id:int}", summary="Replace a customer's fields")
    async def replace_customer(
        self, customer_id: CustomerId, data: JSONBody[CustomerReplace], uow: UowDep, clock: ClockDep, if_match: IfMatch = None
    ) -> Response[CustomerOut]:
        cmd = ReplaceCustomer(customer_id=customer_id, name=data.name, email=data.email, expected_version=_version(if_match))
        return _one(await replace_customer(cmd, uow, clock))

    @patch("/{customer_id:int}", summary="Change some of a customer's fields")
    async def patch_customer(
        self, customer_id: CustomerId, data: JSONBody[CustomerPatch], uow: UowDep, clock: ClockDep, if_match: IfMatch = None
    ) -> Response[CustomerOut]:
        cmd = PatchCustomer(customer_id=customer_id, changes=data.changes(), expected_version=_version(if_match))
        return _one(await patch_customer(cmd, uow, clock))

    @delete("/{customer_id:int}", summary="Delete a customer (here and in every integration)", status_code=HTTP_204_NO_CONTENT)
    async def delete_customer(self, customer_id: CustomerId, uow: UowDep, clock: ClockDep, if_match: IfMatch = None) -> None:
        await delete_customer(DeleteCustomer(customer_id=customer_id, expected_version=_version(if_match)), uow, clock)

    @get("/{customer_id:int}/sync-events", summary="A customer's sync history, newest first")
    async def sync_events(
        self, customer_id: CustomerId, uow: UowDep, limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100
    ) -> list[SyncEventOut]:
        return [SyncEventOut.of(r) for r in await sync_history(customer_id, uow, limit)]


def _one(customer: Customer, status: int = 200, location: bool = False) -> Response[CustomerOut]:
    headers = {"ETag": _etag(customer)}
    if location:
        headers["Location"] = f"{CustomerController.path}/{customer.id}"
    return Response(CustomerOut.of(customer), status_code=status, headers=headers)


def _etag(customer: Customer) -> str:
    return f'"{customer.version}"'


def _version(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    # isascii: str.isdigit() is also true of "²" and other digits that int() refuses (a 500 otherwise).
    if not (tag.isascii() and tag.isdigit()) or len(tag) > 18:
        raise ValidationException(extra=[{"key": "If-Match", "message": "must be an ETag returned by this API", "source": "header"}])
    return int(tag)


def _encode_cursor(after_id: int) -> str:
    return base64.urlsafe_b64encode(f"after:{after_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix == "after" and value.isdigit() and len(value) <= 18:
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationException(extra=[{"key": "cursor", "message": "is not a cursor returned by this API", "source": "query"}])
