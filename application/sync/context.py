"""What every sync use case needs besides the message: storage, time, the policy, who we are."""

from __future__ import annotations

import msgspec

from application.accounts import AccountGuard
from application.ports import Clock, UnitOfWorkFactory
from domain.conflicts import ConflictPolicy


class SyncContext(msgspec.Struct, frozen=True):
    uow_factory: UnitOfWorkFactory
    clock: Clock
    policy: ConflictPolicy
    installation: str  # this installation's id (domain.ownership): our tags, our idempotency keys
    accounts: AccountGuard  # is the external account still the bound one?
