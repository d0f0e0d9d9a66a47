"""Request guards: the API token, the JSON media type, and printable parameters.

All `async def`: Litestar runs a plain `def` guard in a thread pool, a thread hop per guard per
request for checks that take microseconds. And one guard per route (``api_request``): Litestar
copies the route handler for every guard it calls (py-spy: three guards were 7% of a create's CPU)."""

from __future__ import annotations

import hmac
import unicodedata
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

_BODY_METHODS = {"POST", "PUT", "PATCH"}


async def requires_api_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """With API_TOKEN set, every catalog and dead-letter call needs ``Authorization: Bearer <token>``."""
    expected: str = connection.app.state.api_token
    if not expected:
        return
    scheme, _space, given = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise NotAuthorizedException("a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


async def json_body(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    # Guards run on HTTP routes only (a WebSocket scope has no method): the check narrows the scope's type.
    if connection.scope["type"] != ScopeType.HTTP or connection.scope["method"] not in _BODY_METHODS:
        return
    media_type = connection.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"send the body as application/json (got {media_type or 'no Content-Type'})",
        )


async def printable_parameters(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """No query or path value may hold a control character: PostgreSQL text refuses NUL (an error,
    not a miss), and no value this API stores or compares holds one. (Lone surrogates cannot
    arrive: percent-decoding replaces invalid UTF-8 and msgspec refuses them in JSON.)"""
    refuse_control_characters(connection)


def refuse_control_characters(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """``printable_parameters`` as a plain call, for a route that runs it without a guard's cost."""
    params = [("query", name, value) for name, value in connection.query_params.multi_items()]
    params += [("path", name, value) for name, value in connection.path_params.items() if isinstance(value, str)]
    bad = [(source, name) for source, name, value in params if any(unicodedata.category(c) == "Cc" for c in value)]
    if bad:
        raise ValidationException(
            extra=[{"key": name, "message": "must not contain control characters", "source": source} for source, name in bad]
        )


async def api_request(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The catalog's, dead letters' and reconcile's routes: printable parameters, the API token,
    a JSON body -- in that order, as three guards ran before."""
    await printable_parameters(connection, handler)
    await requires_api_token(connection, handler)
    await json_body(connection, handler)
