"""``GET /metrics``: Prometheus's text exposition of this process's registry (prometheus-client's
process and platform collectors for now; custsync's own metrics join it in the operability issue)."""

from __future__ import annotations

from litestar import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from entrypoints.http.methods import get


@get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response[bytes]:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
