"""The OpenAPI document says what the API really answers: its problem+json errors, the bearer
token, the headers it sends, closed request bodies, and the links between operations (which
schemathesis follows in its stateful tests). Litestar generates the rest from the handlers."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    Components,
    Link,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
    SecurityRequirement,
    SecurityScheme,
)

from entrypoints.http.problems import PROBLEM_JSON
from entrypoints.http.schemas import CustomerCreate, CustomerPatch, CustomerReplace, DeadLetterReplay, Problem

BEARER = "bearer"
SECURITY: list[SecurityRequirement] = [{BEARER: []}]
COMPONENTS = Components(
    security_schemes={
        BEARER: SecurityScheme(
            type="http",
            scheme="bearer",
            description="`Authorization: Bearer <API_TOKEN>`, when API_TOKEN is set.",
        )
    }
)

_WHY = {
    400: "The body is not JSON, not a JSON object, or nested too deeply; for a webhook, a missing or wrong "
    "signature (every unsigned request) or a signed body that is not an event.",
    401: "API_TOKEN is set and the bearer token is missing or wrong.",
    404: "No such customer (a deleted one included, and any id not spelt in plain ASCII digits), dead letter, "
    "route or integration.",
    409: "The customer kept changing while the write was attempted; try again.",
    412: "If-Match names no current version of the customer (`current_version` says which is).",
    413: "The body is larger than MAX_BODY_BYTES (webhooks: 512 KiB).",
    415: "The body is not application/json.",
    422: "A field, parameter or header breaks a rule (`errors` names each), including a control character in "
    "any query or path value.",
    503: "A backend (the database) is unavailable or saturated, or webhooks are not configured: retry after "
    "`Retry-After` seconds.",
}
_HEADERS = {
    401: {"WWW-Authenticate": "Bearer"},
    503: {"Retry-After": "Seconds to wait before retrying (a database problem; absent when webhooks are not configured)."},
}
_REQUIRED_HEADERS = {401: {"WWW-Authenticate"}}
CLOSED = (CustomerCreate, CustomerReplace, CustomerPatch, DeadLetterReplay)  # forbid_unknown_fields: unknown members are a 422


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """``responses=`` for a handler: the problems it may answer."""
    return {
        status: ResponseSpec(data_container=Problem, media_type=PROBLEM_JSON, description=_WHY[status], generate_examples=False)
        for status in statuses
    }


BODY = (400, 413, 415, 422)
GUARDED = (401, 503)


def document(app: Litestar, systems: list[str]) -> None:
    """Complete the generated document in place (call once, before it is first served);
    ``systems``: the integrations configured, the only values of a webhook's ``{system}``."""
    openapi = app.openapi_schema
    replay = (openapi.components.schemas or {}).get(DeadLetterReplay.__name__)
    if replay is not None:  # exactly one of the two, and "all" only as true
        replay.one_of = [
            Schema(required=["ids"], schema_not=Schema(required=["all"])),
            Schema(required=["all"], properties={"all": Schema(const=True)}, schema_not=Schema(required=["ids"])),
        ]
    for name, struct in [(s.__name__, s) for s in CLOSED]:
        schema = (openapi.components.schemas or {}).get(name)
        if schema is not None and struct.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
    for item in (openapi.paths or {}).values():
        item.head = None  # HEAD is served wherever GET is (RFC 9110); listing it twice helps no one
        for operation in _operations(item):
            _drop_litestar_validation_response(operation)
            _headers(operation)
    _customer_links(openapi.paths or {})
    webhook = (openapi.paths or {}).get("/api/v1/webhooks/{system}")
    if webhook is not None and webhook.post is not None:
        _signed_body(webhook.post, systems)


def _operations(item: Any) -> list[Operation]:
    return [op for op in (item.get, item.put, item.post, item.patch, item.delete) if op is not None]


def _drop_litestar_validation_response(operation: Operation) -> None:
    """Litestar documents a JSON 400 "ValidationException" on every operation with parameters;
    this API answers validation errors with a 422 problem, so where no 400 problem is declared, none is."""
    responses = operation.responses or {}
    response = responses.get("400")
    if response is not None and PROBLEM_JSON not in (getattr(response, "content", None) or {}):
        del responses["400"]


def _headers(operation: Operation) -> None:
    for code, response in (operation.responses or {}).items():
        if isinstance(response, Reference):
            continue  # a reference has no headers of its own (this API declares none)
        for name, description in _HEADERS.get(int(code), {}).items():
            response.headers = {
                **(response.headers or {}),
                name: OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.STRING),
                    description=description,
                    required=name in _REQUIRED_HEADERS.get(int(code), set()),
                ),
            }


def _customer_links(paths: dict[str, Any]) -> None:
    """Each response that carries a customer links to what can be done with it next."""
    one = paths.get("/api/v1/customers/{customer_id}")
    if one is None:
        return
    targets = {
        "get": one.get,
        "replace": one.put,
        "patch": one.patch,
        "delete": one.delete,
        "sync_events": getattr(paths.get("/api/v1/customers/{customer_id}/sync-events"), "get", None),
    }
    links = {
        name: Link(operation_id=op.operation_id, parameters={"customer_id": "$response.body#/id"})
        for name, op in targets.items()
        if op is not None
    }
    etag = "$response.header.ETag"
    for name in ("replace", "patch", "delete"):
        if name in links:
            links[f"{name}_if_match"] = Link(
                operation_id=links[name].operation_id, parameters={"customer_id": "$response.body#/id", "header.If-Match": etag}
            )
    sources = [(paths.get("/api/v1/customers"), "post", "201"), (one, "get", "200"), (one, "put", "200"), (one, "patch", "200")]
    for item, method, code in sources:
        operation = getattr(item, method, None) if item is not None else None
        response = (operation.responses or {}).get(code) if operation is not None else None
        if response is not None:
            response.links = links
            response.headers = {
                **(response.headers or {}),
                "ETag": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.STRING),
                    required=True,
                    description='The version, quoted ("3"): send it as If-Match.',
                ),
            }
            if code == "201":
                response.headers["Location"] = OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING), required=True)


def _signed_body(operation: Operation, systems: list[str]) -> None:
    for parameter in operation.parameters or []:
        if not systems:  # no system that sends webhooks (Salesforce alone): every name is a 404
            break
        if isinstance(parameter, Parameter) and parameter.name == "system" and isinstance(parameter.schema, Schema):
            parameter.schema.enum = list(systems)
    operation.request_body = RequestBody(
        required=True,
        description="The event exactly as the system sent it: the signature covers these bytes.",
        content={"application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT))},
    )
    operation.parameters = [
        *(operation.parameters or []),
        Parameter(
            name="Stripe-Signature",
            param_in="header",
            required=True,
            schema=Schema(type=OpenAPIType.STRING),
            description="Stripe's signature of the body; anything that is not a valid one is a 400.",
        ),
    ]
