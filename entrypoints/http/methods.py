"""HEAD wherever GET is, and an ``Allow`` that lists every method of the route.

Litestar routes HEAD only to handlers that declare it, so reads declare both (the server sends
a HEAD answer's headers without its body: uvicorn and Litestar's test client drop it). Its
automatic OPTIONS handler answers with the methods its route had when the handler was made, which
for a path served by several handlers is only the first one's: ``Allow`` is set again here from
the app's final routes.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, route
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import HttpMethod
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope


def get(path: str | list[str] | None = None, **options: Any) -> route:
    """Like ``litestar.get``, for HEAD too."""
    return route(path, http_method=[HttpMethod.GET, HttpMethod.HEAD], **options)


def correct_allow(app: Litestar) -> None:
    """Make OPTIONS answer ``Allow`` with every method of its route (see the module docstring)."""
    allowed = {r.path_format: ", ".join(sorted(r.methods)) for r in app.routes if isinstance(r, HTTPRoute)}

    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start" and scope.get("method") == "OPTIONS" and message["status"] == 204:
            methods = allowed.get(scope.get("path_template", ""))
            if methods is not None:
                MutableScopeHeaders.from_message(message)["Allow"] = methods

    app.before_send.append(before_send)
