"""``GET /api/v1/status``: the on-call screen as JSON (``application.status``; ``custsync status``)."""

from __future__ import annotations

from application.status import StatusReport, read_status
from entrypoints.http.deps import ServicesDep
from entrypoints.http.guards import api_request
from entrypoints.http.methods import get
from entrypoints.http.openapi import GUARDED, SECURITY, problems


@get(
    "/api/v1/status",
    tags=["operations"],
    guards=[api_request],
    security=SECURITY,
    responses=problems(*GUARDED),
    summary="Sync status per integration: backlog, lag, failures, drift, last catch-up and reconcile",
    description="What an on-call engineer reads first. `lag` is per worker group (`catalog` reads sync.inbound, each "
    "system its own sync.outbound) and per `topic:partition`; it is null (with `lag_error`) when the broker cannot be "
    "asked. A database that cannot be reached answers 503. The error rate is of the last hour's changes.",
)
async def status(services: ServicesDep) -> StatusReport:
    return await read_status(services.uow_factory, services.integrations, services.consumer_lag, services.clock)
