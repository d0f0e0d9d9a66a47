"""``GET /metrics``: Prometheus's text exposition of this process's figures (``adapters.prometheus``):
custsync's own and prometheus-client's process collectors; with ``custsync api --workers N``,
every API process's figures merged."""

from __future__ import annotations

from litestar import Response
from litestar.handlers import HTTPRouteHandler

from adapters.prometheus import exposition
from entrypoints.container import Container
from entrypoints.http.methods import get


def metrics_route(container: Container) -> HTTPRouteHandler:
    @get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response[bytes]:
        body, content_type = exposition(container.metrics_registry())
        # prometheus-client's type names its charset already: Litestar would add a second to a text/ type.
        return Response(body, headers={"content-type": content_type})

    return metrics
