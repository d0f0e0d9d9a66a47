"""The one place where errors become HTTP responses: RFC 9457 problem+json, never a stack trace."""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from litestar import Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_412_PRECONDITION_FAILED,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from application.errors import BackendUnavailable, InvalidWebhook, NotLinked, UnknownSystem, WebhookNotConfigured
from application.sync.reconcile import OtherRunActive
from domain.errors import ConcurrentUpdate, CustomerNotFound, DeadLetterNotFound, InvalidCustomer, StaleVersion
from entrypoints.http.types import AnyRequest

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")
_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DEFAULT_RETRY_AFTER = 5  # seconds, when the backend did not say (a restart, a lost connection)


def problem(
    status: int, title: str, detail: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _invalid_customer(_: AnyRequest, exc: InvalidCustomer) -> Response[Any]:
    errors = [{"field": e.field, "reason": e.reason} for e in exc.errors]
    return problem(HTTP_422_UNPROCESSABLE_ENTITY, "Invalid customer", str(exc), errors=errors)


def _request_validation(_: AnyRequest, exc: ValidationException) -> Response[Any]:
    """Litestar's own validation (body schema, query and path parameters) -> 422 with the field."""
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        message, key, source = str(item.get("message", "")), item.get("key", ""), item.get("source", "")
        if source == "body" and message == "'data'":
            return problem(HTTP_400_BAD_REQUEST, "Bad request", "the request body must be a JSON object")
        field = key
        if match := _UNKNOWN_FIELD.search(message):
            field, message = match.group(1), "is not a known field"
        elif match := _MISSING_FIELD.search(message):
            field, message = match.group(1), "is required (send null to leave it empty)"
        elif source == "body" and key == "data":
            field = "body"
        if match := _AT_PATH.search(message):  # nested path from msgspec
            message = message[: match.start()]
            field = match.group(1) or field
        errors.append({"field": field, "reason": message, "in": source or "request"})
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors) or str(exc.detail)
    return problem(HTTP_422_UNPROCESSABLE_ENTITY, "Invalid request", detail, errors=errors)


def _http(_: AnyRequest, exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    detail = exc.detail if status < HTTP_500_INTERNAL_SERVER_ERROR else None
    title = TITLES.get(status, "Error")
    return problem(status, title, detail if detail != title else None, headers=exc.headers)


def _not_found(_: AnyRequest, exc: CustomerNotFound | UnknownSystem) -> Response[Any]:
    return problem(HTTP_404_NOT_FOUND, "Not found", str(exc))


def _dead_letter_not_found(_: AnyRequest, exc: DeadLetterNotFound) -> Response[Any]:
    return problem(HTTP_404_NOT_FOUND, "Not found", str(exc), unknown_ids=list(exc.unknown), replayed_ids=list(exc.replayed))


def _concurrent(_: AnyRequest, exc: ConcurrentUpdate) -> Response[Any]:
    return problem(HTTP_409_CONFLICT, "Conflict", f"{exc}: the customer kept changing while we wrote; try again")


def _conflicting(_: AnyRequest, exc: NotLinked | OtherRunActive) -> Response[Any]:
    if isinstance(exc, OtherRunActive):
        return problem(HTTP_409_CONFLICT, "Conflict", str(exc), active_run=exc.run.id)
    return problem(HTTP_409_CONFLICT, "Conflict", str(exc))


def _stale(_: AnyRequest, exc: StaleVersion) -> Response[Any]:
    return problem(HTTP_412_PRECONDITION_FAILED, "Precondition failed", str(exc), current_version=exc.actual)


def _invalid_webhook(_: AnyRequest, exc: InvalidWebhook) -> Response[Any]:
    return problem(HTTP_400_BAD_REQUEST, "Invalid webhook", str(exc))


def _undecodable(request: AnyRequest, exc: UnicodeDecodeError) -> Response[Any]:
    """Invalid UTF-8 inside a JSON body: msgspec raises UnicodeDecodeError, which Litestar lets through."""
    if request.method in _BODY_METHODS:
        return problem(HTTP_400_BAD_REQUEST, "Bad request", "the request body is not valid UTF-8")
    return _unexpected(request, exc)


def _too_deep(request: AnyRequest, exc: RecursionError) -> Response[Any]:
    """JSON nested deeper than the decoder's recursion limit (msgspec raises RecursionError, which
    Litestar lets through): the sender's fault, never a 500 nor a logged trace."""
    if request.method in _BODY_METHODS:
        return problem(HTTP_400_BAD_REQUEST, "Bad request", "the request body is nested too deeply")
    return _unexpected(request, exc)


def _unavailable(request: AnyRequest, exc: BackendUnavailable) -> Response[Any]:
    """A backend down, restarting or saturated (the database pool exhausted): 503 with
    Retry-After, so that clients and load balancers back off instead of piling up. One log line,
    no trace: the cause is operational, not a bug, and the driver's details stay out of the answer."""
    retry_after = max(1, math.ceil(exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER))
    log.warning("%s %s: %s (answered 503, Retry-After %d)", request.method, request.url.path, exc, retry_after)
    return problem(
        HTTP_503_SERVICE_UNAVAILABLE,
        "Service unavailable",
        f"the {exc.backend} is unavailable right now; retry in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


def _not_configured(_: AnyRequest, exc: WebhookNotConfigured) -> Response[Any]:
    return problem(HTTP_503_SERVICE_UNAVAILABLE, "Service unavailable", str(exc))


def _unexpected(request: AnyRequest, exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)

    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error", "the error was logged")


TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}

EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    InvalidCustomer: _invalid_customer,
    ValidationException: _request_validation,
    HTTPException: _http,
    CustomerNotFound: _not_found,
    UnknownSystem: _not_found,
    DeadLetterNotFound: _dead_letter_not_found,
    StaleVersion: _stale,
    ConcurrentUpdate: _concurrent,
    NotLinked: _conflicting,
    OtherRunActive: _conflicting,
    InvalidWebhook: _invalid_webhook,
    WebhookNotConfigured: _not_configured,
    UnicodeDecodeError: _undecodable,
    RecursionError: _too_deep,
    BackendUnavailable: _unavailable,
    Exception: _unexpected,
}
