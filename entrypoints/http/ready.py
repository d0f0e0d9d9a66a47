"""``GET /ready``: readiness, for load balancers and orchestrators (``/health`` stays a constant
liveness check that never touches a backend). Ready when PostgreSQL answers and its schema is at
this code's migration head, and Kafka answers and holds the sync topics; otherwise 503 naming
what failed. Each check is bounded, and they run side by side, so a probe gets its answer within
``READY_TIMEOUT_SECONDS``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
from litestar import Response
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from domain.messages import SYNC_TOPICS
from entrypoints.container import Container
from entrypoints.http.methods import get

READY_TIMEOUT_SECONDS = 2.0


class Readiness(msgspec.Struct):
    status: str  # "ready" or "not ready"
    checks: dict[str, str]  # per backend: "ok", or why not


async def readiness(container: Container) -> Readiness:
    settings = container.settings()
    checks: dict[str, Callable[[], Awaitable[None]]] = {}
    if settings.storage_backend == "postgres":
        from adapters.postgres.migrations import ensure_migrated

        checks["postgres"] = lambda: ensure_migrated(container.engine())
    checks["kafka" if settings.broker_backend == "kafka" else "broker"] = lambda: container.publisher().check(
        SYNC_TOPICS, READY_TIMEOUT_SECONDS
    )
    results = await asyncio.gather(*(_bounded(check()) for check in checks.values()))
    named = dict(zip(checks, results, strict=True))
    return Readiness("ready" if all(r == "ok" for r in results) else "not ready", named)


async def _bounded(check: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(check, READY_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"no answer within {READY_TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return "ok"


def ready_route(container: Container) -> HTTPRouteHandler:
    @get(
        "/ready",
        tags=["operations"],
        summary="Readiness: PostgreSQL (schema current) and Kafka (sync topics)",
        responses={503: ResponseSpec(data_container=Readiness, description="Not ready: `checks` says which backend and why")},
    )
    async def ready() -> Response[Readiness]:
        found = await readiness(container)
        return Response(found, status_code=HTTP_200_OK if found.status == "ready" else HTTP_503_SERVICE_UNAVAILABLE)

    return ready
