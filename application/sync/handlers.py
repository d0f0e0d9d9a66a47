"""The use cases behind each sync topic, bound to their dependencies."""

from __future__ import annotations

from application.accounts import AccountGuard, InstallationIdentity
from application.ports import Clock, Integrations, UnitOfWorkFactory
from application.sync.context import SyncContext
from application.sync.inbound import give_up_inbound, sync_inbound
from application.sync.outbound import give_up_outbound, sync_outbound
from domain.conflicts import ConflictPolicy
from domain.messages import CustomerChanged, ExternalChange, decode
from domain.sync import Handled


class _Handler:
    def __init__(
        self, uow_factory: UnitOfWorkFactory, integrations: Integrations, clock: Clock, policy: ConflictPolicy,
        identity: InstallationIdentity, accounts: AccountGuard,
    ) -> None:
        self._uow_factory, self._integrations, self._clock, self._policy = uow_factory, integrations, clock, policy
        self._identity, self._accounts = identity, accounts

    async def _context(self) -> SyncContext:
        return SyncContext(self._uow_factory, self._clock, self._policy, await self._identity.id(), self._accounts)


class OutboundHandler(_Handler):
    async def handle(self, payload: bytes) -> list[Handled]:
        return await sync_outbound(decode(payload, CustomerChanged), self._integrations, await self._context())

    async def give_up(self, payload: bytes, error: str) -> None:
        await give_up_outbound(decode(payload, CustomerChanged), error, self._uow_factory, self._integrations, self._clock)

    def supersedes(self, later: bytes, earlier: bytes) -> bool:
        """The consumer's coalescing: an undecodable message stands for nothing and is stood for
        by nothing (it dies on its own)."""
        try:
            return decode(later, CustomerChanged).stands_for(decode(earlier, CustomerChanged))
        except Exception:  # noqa: BLE001 - any bytes may arrive on the topic
            return False


class InboundHandler(_Handler):
    async def handle(self, payload: bytes) -> list[Handled]:
        return [await sync_inbound(decode(payload, ExternalChange), self._integrations, await self._context())]

    async def give_up(self, payload: bytes, error: str) -> None:
        await give_up_inbound(decode(payload, ExternalChange), error, self._uow_factory, self._clock)
