"""The use cases behind each sync topic, bound to their dependencies."""

from __future__ import annotations

import logging

from application.correlation import bound
from application.ports import Integrations
from application.sync.context import SyncContexts
from application.sync.inbound import give_up_inbound, sync_inbound
from application.sync.outbound import give_up_outbound, sync_outbound
from domain.messages import CustomerChanged, ExternalChange, decode
from domain.sync import Handled, Outcome

log = logging.getLogger("application.sync")


def _logged(handled: list[Handled]) -> list[Handled]:
    """One line per change carried (or found in conflict), the rest (echoes, duplicates, nothing to
    do) at DEBUG; the correlation id and the event's fields come with it (``bound``)."""
    for one in handled:
        took = "" if one.latency is None else f" ({one.latency * 1000:.0f} ms after the change)"
        level = logging.INFO if one.outcome in (Outcome.SYNCED, Outcome.CONFLICT) else logging.DEBUG
        log.log(
            level,
            "%s %s %s%s",
            one.direction.value,
            one.system,
            one.outcome.value,
            took,
            extra={"system": one.system, "outcome": one.outcome.value},
        )
    return handled


class _Handler:
    def __init__(self, contexts: SyncContexts, integrations: Integrations) -> None:
        self._contexts, self._integrations = contexts, integrations


class OutboundHandler(_Handler):
    async def handle(self, payload: bytes) -> list[Handled]:
        event = decode(payload, CustomerChanged)
        with bound(correlation_id=event.correlation_id or event.event_id, event_id=event.event_id, customer_id=event.customer_id):
            return _logged(await sync_outbound(event, self._integrations, await self._contexts()))

    async def give_up(self, payload: bytes, error: str) -> None:
        ctx = await self._contexts()
        await give_up_outbound(decode(payload, CustomerChanged), error, ctx.uow_factory, self._integrations, ctx.clock)

    def supersedes(self, later: bytes, earlier: bytes) -> bool:
        """The consumer's coalescing: an undecodable message stands for nothing and is stood for
        by nothing (it dies on its own)."""
        try:
            return decode(later, CustomerChanged).stands_for(decode(earlier, CustomerChanged))
        except Exception:
            return False


class InboundHandler(_Handler):
    async def handle(self, payload: bytes) -> list[Handled]:
        change = decode(payload, ExternalChange)
        with bound(
            correlation_id=change.correlation_id or change.event_id, event_id=change.event_id, external_id=change.external_id
        ):
            return _logged([await sync_inbound(change, self._integrations, await self._contexts())])

    async def give_up(self, payload: bytes, error: str) -> None:
        ctx = await self._contexts()
        await give_up_inbound(decode(payload, ExternalChange), error, ctx.uow_factory, ctx.clock)
