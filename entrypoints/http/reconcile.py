"""``/api/v1/reconcile``: ask the worker for a reconcile run, follow it, read what it found; and
``/api/v1/customers/{id}/resync``: the operator's re-sync of one customer."""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from litestar import Controller, Response, post
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from application.ports import Integrations
from application.sync.reconcile import request_run
from application.sync.resync import Direction, resync
from domain.drift import FindingKind, MatchBy
from entrypoints.http.deps import ServicesDep, UowDep
from entrypoints.http.guards import api_request
from entrypoints.http.methods import get
from entrypoints.http.openapi import BODY, GUARDED, SECURITY, problems
from entrypoints.http.params import BIGINT_MAX, PRINTABLE, CustomerIdPath, catalog_id, invalid_body
from entrypoints.http.schemas import FindingOut, ReconcileRequest, ReconcileRunOut, ResyncOut, ResyncRequest
from entrypoints.http.types import AnyRequest

T = TypeVar("T")
MAX_FINDINGS_PAGE = 1000
JSON_SAFE_MAX = 2**53 - 1
RunIdPath = Annotated[
    str,
    PathParameter(
        description="The run's id (plain ASCII digits).",
        schema_extra={"type": "integer", "format": "int64", "minimum": 1, "maximum": BIGINT_MAX},
    ),
]


class ReconcileController(Controller):
    path = "/api/v1/reconcile"
    tags = ("reconcile",)
    guards = (api_request,)
    security = SECURITY

    @post(
        "/",
        summary="Ask for a reconcile run",
        status_code=HTTP_202_ACCEPTED,
        description="Queued for the worker, which runs one at a time per system (the same run is returned while one "
        "with the same options is queued or running; another one with other options is a 409). Follow it at the "
        "`Location`; its findings at `.../findings`.",
        responses=problems(*GUARDED, *BODY, 404, 409),
    )
    async def start(
        self,
        data: JSONBody[ReconcileRequest],
        request: AnyRequest,
        services: ServicesDep,
    ) -> Response[ReconcileRunOut]:
        body = await _strictly(request, ReconcileRequest)
        _known(body.system, services.integrations)
        match_by = MatchBy(body.match_by) if body.match_by else None
        run, _ = await request_run(
            services.uow_factory, services.clock, body.system, dry_run=body.dry_run, match_by=match_by, trigger="api"
        )
        return Response(
            ReconcileRunOut.of(run),
            status_code=HTTP_202_ACCEPTED,
            headers={"Location": f"{self.path}/runs/{run.id}"},
        )

    @get("/runs", summary="Reconcile runs, newest first", responses=problems(*GUARDED, 422))
    async def runs(
        self,
        uow: UowDep,
        system: Annotated[
            str | None,
            QueryParameter(
                max_length=64,
                description="Only this integration's.",
                schema_extra={"pattern": PRINTABLE},
            ),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    ) -> list[ReconcileRunOut]:
        async with uow:
            return [ReconcileRunOut.of(r) for r in await uow.reconcile.runs(system, limit)]

    @get("/runs/{run_id:str}", summary="One reconcile run: status, phase, counts", responses=problems(*GUARDED, 404, 422))
    async def run(self, uow: UowDep, run_id: RunIdPath) -> ReconcileRunOut:
        async with uow:
            found = await uow.reconcile.get_run(_run_id(run_id))
        if found is None:
            raise NotFoundException(f"no reconcile run {run_id}")
        return ReconcileRunOut.of(found)

    @get(
        "/runs/{run_id:str}/findings",
        summary="What a run found (customers in sync aside), in the order found",
        responses=problems(*GUARDED, 404, 422),
    )
    async def findings(
        self,
        uow: UowDep,
        run_id: RunIdPath,
        after: Annotated[
            int,
            QueryParameter(
                # Bounded within doubles' exact range: a client (or fuzzer) reading the bound as a float
                # must not take a value just beyond it for a valid one (seqs never get near it).
                ge=0,
                le=JSON_SAFE_MAX,
                description="The last `seq` of the previous page (0, the default, for the first page).",
            ),
        ] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_FINDINGS_PAGE)] = 100,
        kind: Annotated[FindingKind | None, QueryParameter(description="Only findings of this kind.")] = None,
    ) -> list[FindingOut]:
        async with uow:
            run = await uow.reconcile.get_run(_run_id(run_id))
            if run is None:
                raise NotFoundException(f"no reconcile run {run_id}")
            found = await uow.reconcile.findings(run.id, after=after, limit=limit, kinds=[kind.value] if kind else None)
        return [FindingOut.of(f) for f in found]


class ResyncController(Controller):
    path = "/api/v1/customers/{customer_id:str}/resync"
    tags = ("customers",)
    guards = (api_request,)
    security = SECURITY

    @post(
        "/",
        summary="Re-sync one customer (push the catalog's state, or pull the external one)",
        status_code=HTTP_202_ACCEPTED,
        description="Whatever the baselines and the conflict policy say; queued for the worker. Its outcome shows in the "
        "customer's sync-events under `event_id`. 404: no such customer (or deleted); "
        "409: a pull of a customer not linked there.",
        responses=problems(*GUARDED, *BODY, 404, 409),
    )
    async def resync(
        self,
        customer_id: CustomerIdPath,
        data: JSONBody[ResyncRequest],
        request: AnyRequest,
        services: ServicesDep,
    ) -> ResyncOut:
        body = await _strictly(request, ResyncRequest)
        _known(body.system, services.integrations)
        cid = catalog_id(customer_id)
        event_id = await resync(
            cid,
            body.system,
            Direction(body.direction),
            services.integrations,
            services.uow_factory,
            services.publisher,
            services.clock,
        )
        return ResyncOut(cid, body.system, body.direction, event_id)


def _known(system: str, integrations: Integrations) -> None:
    if system not in integrations:
        names = ", ".join(sorted(integrations))
        raise invalid_body("system", f"is not a configured integration ({names})")


def _run_id(segment: str) -> int:
    try:
        return catalog_id(segment)
    except NotFoundException:
        raise NotFoundException(f"no reconcile run {segment!r}") from None


async def _strictly(request: AnyRequest, kind: type[T]) -> T:
    """The body read without Litestar's lenient conversion (``"false"`` is no boolean here)."""
    raw = await request.body()
    try:
        return msgspec.json.decode(raw or b"{}", type=kind, strict=True)
    except msgspec.ValidationError as exc:
        raise invalid_body("data", str(exc)) from None
