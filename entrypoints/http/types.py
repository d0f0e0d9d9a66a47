"""Litestar's generic types with the parameters this app leaves open."""

from typing import Any

from litestar import Request

AnyRequest = Request[Any, Any, Any]
