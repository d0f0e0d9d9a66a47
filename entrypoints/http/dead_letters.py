"""``/api/v1/dead-letters``: what the worker gave up on, and replaying it once the cause is fixed."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK

from application.sync.dead_letters import DEFAULT_LIMIT, MAX_LIMIT, list_dead_letters, replay_dead_letters
from entrypoints.http.deps import ServicesDep, UowDep
from entrypoints.http.guards import api_request
from entrypoints.http.methods import get
from entrypoints.http.openapi import BODY, GUARDED, SECURITY, problems
from entrypoints.http.params import invalid_body
from entrypoints.http.schemas import DeadLetterOut, DeadLetterReplay, ReplayOut
from entrypoints.http.types import AnyRequest


class DeadLetterController(Controller):
    path = "/api/v1/dead-letters"
    tags = ("dead letters",)
    guards = (api_request,)
    security = SECURITY

    @get("/", summary="Dead letters, newest first", responses=problems(*GUARDED, 422))
    async def list_dead_letters(
        self,
        uow: UowDep,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="How many.")] = DEFAULT_LIMIT,
        include_replayed: Annotated[bool, QueryParameter(description="Also those already replayed.")] = False,
    ) -> list[DeadLetterOut]:
        return [DeadLetterOut.of(d) for d in await list_dead_letters(uow, limit, include_replayed)]

    @post(
        "/replay",
        summary="Send dead letters back to their topics",
        status_code=HTTP_200_OK,
        description='`{"ids": [...]}` or `{"all": true}`. 404 if an id is unknown or already replayed '
        "(then nothing is replayed). A letter that fails again comes back to the list.",
        responses=problems(*GUARDED, *BODY, 404),
    )
    async def replay(self, data: JSONBody[DeadLetterReplay], request: AnyRequest, services: ServicesDep) -> ReplayOut:
        selection = _selection(await _strictly(request))
        return ReplayOut(
            await replay_dead_letters(selection, services.uow_factory, services.publisher, services.clock, services.metrics)
        )


async def _strictly(request: AnyRequest) -> DeadLetterReplay:
    """The body read again without Litestar's lenient conversion (``"1"`` or ``1.0`` as the id 1,
    ``"true"`` or ``1`` as true): a replay names letters, so it takes JSON integers and booleans only."""
    try:
        return msgspec.convert(await request.json(), DeadLetterReplay, strict=True)
    except msgspec.ValidationError as exc:
        raise invalid_body("data", str(exc)) from None


def _selection(data: DeadLetterReplay) -> list[int] | None:
    """The ids to replay, ``None`` for all; anything but exactly one of the two is a 422."""
    given_ids, given_all = isinstance(data.ids, list), isinstance(data.all, bool)
    if given_ids and given_all:
        _invalid("all", "cannot be combined with ids: send one of them")
    if given_all and data.all is not True:
        _invalid("all", "must be true (to replay only some, send ids instead)")
    if not given_ids and not given_all:
        _invalid("ids", 'is required, or send {"all": true} to replay every dead letter')
    return data.ids if isinstance(data.ids, list) else None


def _invalid(field: str, reason: str) -> None:
    raise invalid_body(field, reason)
