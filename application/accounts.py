"""This installation's identity and the external accounts it is bound to."""

from __future__ import annotations

import logging
from datetime import datetime

from application.errors import AccountChanged, AccountMismatch, ExternalCustomerMissing, UnprovenBinding
from application.ports import Clock, Integration, Integrations, UnitOfWorkFactory
from domain.binding import AccountBinding
from domain.ownership import new_installation_id

log = logging.getLogger(__name__)


async def ensure_installation(uow_factory: UnitOfWorkFactory, clock: Clock) -> str:
    """The installation id, made on first use (``custsync init``, else the first start): it is
    what tells our records in an external system from another installation's."""
    async with uow_factory() as uow:
        existing = await uow.installation.get()
        if existing is not None:
            return existing
        installation = await uow.installation.add(new_installation_id(), clock.now())
        await uow.commit()
    return installation


class InstallationIdentity:
    """The installation id, read once per process (the sync use cases need it on every delivery)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory, self._clock = uow_factory, clock
        self._id: str | None = None

    async def id(self) -> str:
        if self._id is None:
            self._id = await ensure_installation(self._uow_factory, self._clock)
        return self._id


async def check_binding(integration: Integration, uow_factory: UnitOfWorkFactory, clock: Clock) -> AccountBinding:
    """Bind to the credentials' account on first start; afterwards refuse (AccountMismatch) any
    other account or mode, so that a wrong key can never touch the catalog. A catalog that already
    links customers (a deployment from before bindings) is bound only if the account knows the
    latest of them: a first start must not bind a wrong key either."""
    account = await integration.account()
    async with uow_factory() as uow:
        bound = await uow.bindings.get(integration.system)
        sample = await uow.mappings.latest(integration.system) if bound is None else None
    if bound is None and sample is not None:
        await _knows(integration, account, sample.external_id)
    async with uow_factory() as uow:
        bound = await uow.bindings.get(integration.system)
        if bound is None:
            # Two first starts at once: the first binding stands, the other is compared with it.
            bound = await uow.bindings.add(AccountBinding(system=integration.system, account=account, bound_at=clock.now()))
            await uow.commit()
            if bound.matches(account):
                log.info("%s: bound this catalog to %s (its first start)", integration.system, account)
    if not bound.matches(account):
        raise AccountMismatch(integration.system, bound.account, account)
    return bound


async def _knows(integration: Integration, account: object, external_id: str) -> None:
    try:
        await integration.retrieve_customer(external_id)
    except ExternalCustomerMissing:
        raise UnprovenBinding(
            f"{integration.system}: the credentials belong to {account}, which does not know {external_id}, a customer "
            "this catalog is linked to; refusing to bind to it "
            f"(if it is the right account, run `custsync {integration.system} rebind`)"
        ) from None


async def check_bindings(integrations: Integrations, uow_factory: UnitOfWorkFactory, clock: Clock) -> list[AccountBinding]:
    return [await check_binding(integration, uow_factory, clock) for integration in integrations.values()]


async def rebind(
    integration: Integration, uow_factory: UnitOfWorkFactory, clock: Clock
) -> tuple[AccountBinding | None, AccountBinding]:
    """An operator's decision: bind the catalog to the account the credentials now belong to.
    Returns the old binding (if any) and the new one."""
    account = await integration.account()
    async with uow_factory() as uow:
        old = await uow.bindings.get(integration.system)
        new = AccountBinding(system=integration.system, account=account, bound_at=clock.now())
        await uow.bindings.save(new)
        await uow.commit()
    return old, new


class AccountGuard:
    """Checks, while the worker runs, that the credentials still answer for the bound account:
    before a create (the one write a wrong account would take without complaint; at most once per
    ``interval`` seconds) and at once after a 404 on a mapped customer. Another account raises
    AccountChanged, which pauses sync instead of breaking links one by one or creating customers
    in the wrong account."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, interval: float = 10.0) -> None:
        self._uow_factory, self._clock, self._interval = uow_factory, clock, interval
        self._checked: dict[str, datetime] = {}

    async def verify(self, integration: Integration, *, now: bool = False) -> None:
        at = self._clock.now()
        last = self._checked.get(integration.system)
        if not now and last is not None and (at - last).total_seconds() < self._interval:
            return
        account = await integration.account()
        async with self._uow_factory() as uow:
            bound = await uow.bindings.get(integration.system)
        if bound is not None and not bound.matches(account):
            self._checked.pop(integration.system, None)
            raise AccountChanged(
                f"{integration.system}: the credentials now answer for {account}, not for {bound.account} that this "
                "catalog is bound to: sync is paused (fix the key, or `custsync stripe rebind`)"
            )
        self._checked[integration.system] = at
