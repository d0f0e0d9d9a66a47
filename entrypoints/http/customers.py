"""``/api/v1/customers``: the catalog's CRUD, its pagination, and each customer's sync history."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from litestar import Controller, Response, delete, patch, post, put
from litestar.exceptions import ValidationException
from litestar.params import HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from application.commands import CreateCustomer, DeleteCustomer, ListCustomers, PatchCustomer, ReplaceCustomer
from application.customers.create import create_customer
from application.customers.delete import delete_customer
from application.customers.queries import MAX_PAGE_SIZE, get_customer, list_customers, sync_history
from application.customers.update import patch_customer, replace_customer
from application.ports import Integrations
from domain.customer import Customer, CustomerData, validated_changes
from domain.errors import FieldError, InvalidCustomer
from entrypoints.http.deps import ServicesDep, UowDep
from entrypoints.http.guards import api_request
from entrypoints.http.methods import get
from entrypoints.http.openapi import BODY, GUARDED, SECURITY, problems
from entrypoints.http.params import PRINTABLE, CustomerIdPath, catalog_id
from entrypoints.http.preconditions import IF_MATCH_PATTERN, expected_versions
from entrypoints.http.schemas import CustomerCreate, CustomerOut, CustomerPageOut, CustomerPatch, CustomerReplace, SyncEventOut
from entrypoints.http.types import AnyRequest

IfMatch = Annotated[
    str,
    HeaderParameter(
        name="If-Match",
        required=False,
        schema_extra={"pattern": IF_MATCH_PATTERN},
        description='`*`, or the ETag of a GET (`"3"`), or a list of them (`"3", "4"`): the write happens only if the '
        "customer is at one of those versions (strong comparison: a weak `W/` tag never matches), else 412.",
    ),
]


def _versions(request: AnyRequest) -> frozenset[int] | None:
    # Every If-Match line, not only the first: several lines are one list (RFC 9110, section 5.3).
    return expected_versions(request.headers.getall("if-match", []))


class CustomerController(Controller):
    path = "/api/v1/customers"
    tags = ("customers",)
    guards = (api_request,)
    security = SECURITY

    @get("/", summary="List customers, oldest first", responses=problems(*GUARDED, 422))
    async def list_customers(
        self,
        uow: UowDep,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 50,
        cursor: Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page.")] = None,
        email: Annotated[
            str | None,
            QueryParameter(max_length=1024, description="Exact match, case-insensitive.", schema_extra={"pattern": PRINTABLE}),
        ] = None,
    ) -> CustomerPageOut:
        page = await list_customers(ListCustomers(limit=limit, after_id=_decode_cursor(cursor), email=email), uow)
        next_cursor = _encode_cursor(page.next_after_id) if page.next_after_id is not None else None
        return CustomerPageOut([CustomerOut.of(c) for c in page.customers], limit, next_cursor)

    @post("/", summary="Create a customer", status_code=HTTP_201_CREATED, responses=problems(*GUARDED, *BODY))
    async def create_customer(self, data: JSONBody[CustomerCreate], services: ServicesDep) -> Response[CustomerOut]:
        _within_limits({"name": data.name, "email": data.email}, services.integrations)
        customer = await create_customer(CreateCustomer(name=data.name, email=data.email), services.uow(), services.clock)
        return _one(customer, HTTP_201_CREATED, location=True)

    @get(
        "/{customer_id:str}", summary="Get a customer with its links to external systems", responses=problems(*GUARDED, 404, 422)
    )
    async def get_customer(self, customer_id: CustomerIdPath, services: ServicesDep) -> Response[CustomerOut]:
        view = await get_customer(catalog_id(customer_id), services.uow(), services.systems)
        return Response(CustomerOut.of(view.customer, view), headers={"ETag": _etag(view.customer)})

    @put("/{customer_id:str}", summary="Replace a customer's fields", responses=problems(*GUARDED, *BODY, 404, 409, 412))
    async def replace_customer(
        self,
        customer_id: CustomerIdPath,
        data: JSONBody[CustomerReplace],
        services: ServicesDep,
        request: AnyRequest,
        if_match: IfMatch = "",
    ) -> Response[CustomerOut]:
        versions = _versions(request)  # a malformed If-Match is a 422 before an unknown id's 404
        cmd = ReplaceCustomer(customer_id=catalog_id(customer_id), name=data.name, email=data.email, expected_versions=versions)
        _within_limits({"name": data.name, "email": data.email}, services.integrations)
        return _one(await replace_customer(cmd, services.uow(), services.clock))

    @patch("/{customer_id:str}", summary="Change some of a customer's fields", responses=problems(*GUARDED, *BODY, 404, 409, 412))
    async def patch_customer(
        self,
        customer_id: CustomerIdPath,
        data: JSONBody[CustomerPatch],
        services: ServicesDep,
        request: AnyRequest,
        if_match: IfMatch = "",
    ) -> Response[CustomerOut]:
        versions = _versions(request)  # a malformed If-Match is a 422 before an unknown id's 404
        cmd = PatchCustomer(customer_id=catalog_id(customer_id), changes=data.changes(), expected_versions=versions)
        _within_limits(cmd.changes, services.integrations)
        return _one(await patch_customer(cmd, services.uow(), services.clock))

    @delete(
        "/{customer_id:str}",
        summary="Delete a customer (here and in every integration)",
        status_code=HTTP_204_NO_CONTENT,
        responses=problems(*GUARDED, 404, 409, 412, 422),
    )
    async def delete_customer(
        self, customer_id: CustomerIdPath, services: ServicesDep, request: AnyRequest, if_match: IfMatch = ""
    ) -> None:
        versions = _versions(request)  # a malformed If-Match is a 422 before an unknown id's 404
        cmd = DeleteCustomer(customer_id=catalog_id(customer_id), expected_versions=versions)
        await delete_customer(cmd, services.uow(), services.clock)

    @get(
        "/{customer_id:str}/sync-events",
        summary="A customer's sync history, newest first (a deleted customer's too)",
        responses=problems(*GUARDED, 404, 422),
    )
    async def sync_events(
        self, customer_id: CustomerIdPath, uow: UowDep, limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100
    ) -> list[SyncEventOut]:
        return [SyncEventOut.of(r) for r in await sync_history(catalog_id(customer_id), uow, limit)]


def _within_limits(changes: dict[str, str | None], integrations: Integrations) -> None:
    """Refuse up front (422, nothing stored) what an enabled integration would refuse later: its
    limits beyond the catalog's (Salesforce's are shorter than Stripe's, which the catalog's own
    rules mirror). The catalog's own errors come first, and are reported together with these."""
    errors: list[FieldError] = []
    try:
        validated_changes(CustomerData(), changes)
    except InvalidCustomer as exc:
        errors += exc.errors
    wrong = {e.field for e in errors}
    for integration in integrations.values():
        errors += [e for e in integration.field_errors(changes) if e.field not in wrong]
        wrong |= {e.field for e in errors}
    if errors:
        raise InvalidCustomer(errors)


def _one(customer: Customer, status: int = 200, location: bool = False) -> Response[CustomerOut]:
    headers = {"ETag": _etag(customer)}
    if location:
        headers["Location"] = f"{CustomerController.path}/{customer.id}"
    return Response(CustomerOut.of(customer), status_code=status, headers=headers)


def _etag(customer: Customer) -> str:
    return f'"{customer.version}"'


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
