"""What every sync use case needs besides the message: storage, time, the policy, who we are."""

from __future__ import annotations

import msgspec

from application.accounts import AccountGuard, InstallationIdentity
from application.ports import Clock, UnitOfWorkFactory
from domain.conflicts import ConflictPolicy


class SyncContext(msgspec.Struct, frozen=True):
    uow_factory: UnitOfWorkFactory
    clock: Clock
    policy: ConflictPolicy
    installation: str  # this installation's id (domain.ownership): our tags, our idempotency keys
    accounts: AccountGuard  # is the external account still the bound one?


class SyncContexts:
    """The one place a ``SyncContext`` is made (a process holds one of these): the worker's
    handlers, its reconcile runner and the CLI's runs each ask it for theirs. The installation id
    is read when first needed (the identity keeps it), not when the process is wired."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        policy: ConflictPolicy,
        identity: InstallationIdentity,
        accounts: AccountGuard,
    ) -> None:
        self._uow_factory, self._clock, self._policy, self._identity, self._accounts = (
            uow_factory,
            clock,
            policy,
            identity,
            accounts,
        )

    async def __call__(self) -> SyncContext:
        return SyncContext(self._uow_factory, self._clock, self._policy, await self._identity.id(), self._accounts)
