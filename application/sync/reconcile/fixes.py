"""A reconcile run's fixes, applied through the paths live changes take: the inbound use case
(refresh, import) under an event id of the run's own, which the inbox applies once; an outbox
event (export, push) or a link in the transaction that marks the fix applied. So a run resumed
after an interruption applies each fix exactly once."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

from application.customers.changes import STORE_ATTEMPTS, record_change, retried_on_concurrent_update
from application.errors import AccountChanged, IntegrationError
from application.ports import Integrations
from application.sync.context import SyncContext
from application.sync.inbound import sync_inbound
from domain.drift import Finding, FindingKind, Fix, FixStatus, email_key, first_link_data
from domain.errors import ConcurrentUpdate
from domain.mapping import ExternalMapping
from domain.messages import ChangeKind, ExternalChange, ExternalCustomer

T = TypeVar("T")
FIX_BATCH = 200


class Patience(Protocol):
    """Waits out outages while it tries (``Reconciler._patiently``)."""

    async def __call__(self, attempt: Callable[[], Awaitable[T]]) -> T: ...


class Fixes:
    """Applies the planned fixes of one run (none for a dry run). ``patiently`` waits out outages
    as the run does; ``halted`` says the run is stopping (the rest stay planned: a resumed run
    applies them); ``listed`` holds the records of the page in hand, as listed."""

    def __init__(
        self,
        run_id: int,
        dry_run: bool,
        system: str,
        integrations: Integrations,
        ctx: SyncContext,
        *,
        patiently: Patience,
        halted: Callable[[], bool],
        listed: Mapping[str, ExternalCustomer],
    ) -> None:
        self._run_id, self._dry_run, self._system = run_id, dry_run, system
        self._integrations, self._ctx = integrations, ctx
        self._patiently, self._halted, self._listed = patiently, halted, listed

    async def apply_planned(self) -> None:
        """Those found before an interruption (or whose commit's answer was lost), not applied yet."""
        while not self._halted():
            async with self._ctx.uow_factory() as uow:
                planned = await uow.reconcile.planned(self._run_id, FIX_BATCH)
            await self.apply(planned, resumed=True)
            if len(planned) < FIX_BATCH:
                return

    async def apply(self, findings: list[Finding], resumed: bool = False) -> None:
        if self._dry_run:
            return
        for finding in findings:
            if finding.fix is Fix.NONE or finding.fix_status is not FixStatus.PLANNED:
                continue
            if self._halted():
                return  # the rest stay planned: a resumed run applies them
            status, note = await self._patiently(functools.partial(self._fix, finding, resumed))
            await self._patiently(functools.partial(self._mark, finding, status, note))

    async def _fix(self, finding: Finding, resumed: bool) -> tuple[FixStatus, str | None]:
        if finding.fix in (Fix.REFRESH, Fix.IMPORT):
            return await self._inbound(finding, resumed)
        try:
            if finding.fix is Fix.LINK:
                return await retried_on_concurrent_update(lambda: self._link(finding), STORE_ATTEMPTS)
            return await retried_on_concurrent_update(lambda: self._outbound(finding), STORE_ATTEMPTS)
        except ConcurrentUpdate:
            return FixStatus.FAILED, "the customer kept changing while the fix was applied"

    async def _inbound(self, finding: Finding, resumed: bool) -> tuple[FixStatus, str | None]:
        """Through the inbound use case, under an event id of this run's own: applied once."""
        assert finding.external_id is not None  # refreshes and imports name their record
        record: ExternalCustomer | None = None
        if finding.fix is Fix.IMPORT:
            async with self._ctx.uow_factory() as uow:
                record = await uow.reconcile.seen_record(self._run_id, finding.external_id)
        elif finding.kind is FindingKind.DIFFERS and not resumed:
            record = self._listed.get(finding.external_id)
        if record is None:
            record = ExternalCustomer.unread(finding.external_id)  # nothing read to go by: re-fetched
        change = ExternalChange(
            event_id=f"reconcile-{self._run_id}-{finding.external_id}",
            system=self._system,
            kind=ChangeKind.CREATED if finding.fix is Fix.IMPORT else ChangeKind.UPDATED,
            external_id=finding.external_id,
            occurred_at=self._ctx.clock.now(),
            customer=record,
            observed=True,
        )
        try:
            await sync_inbound(change, self._integrations, self._ctx)
        except AccountChanged:
            raise
        except IntegrationError as exc:
            if exc.retryable:
                raise
            return FixStatus.FAILED, str(exc)
        return FixStatus.APPLIED, None

    async def _outbound(self, finding: Finding) -> tuple[FixStatus, str | None]:
        """An outbox event, in the transaction that marks the fix applied."""
        assert finding.customer_id is not None  # exports and pushes name their customer
        async with self._ctx.uow_factory() as uow:
            customer = await uow.customers.get(finding.customer_id)
            mapping = await uow.mappings.get(finding.customer_id, self._system)
            if customer is None:
                return FixStatus.SKIPPED, "the customer is gone"
            if finding.fix is Fix.EXPORT:
                if customer.deleted or mapping is not None:
                    return FixStatus.SKIPPED, "linked or deleted meanwhile"
                # Decided by this run: never held there.
                await record_change(uow, customer, ChangeKind.CREATED, forced_for=self._system)
            else:
                if mapping is None:
                    return FixStatus.SKIPPED, "unlinked meanwhile"
                await record_change(uow, customer, ChangeKind.DELETED if customer.deleted else ChangeKind.UPDATED)
            await uow.reconcile.set_fix_status(self._run_id, finding.subject, FixStatus.APPLIED)
            await uow.commit()
        return FixStatus.APPLIED, None

    async def _link(self, finding: Finding) -> tuple[FixStatus, str | None]:
        """Link a catalog customer to its one email match, in one transaction: the link (its
        baseline is what the record holds), the catalog's merged content, and the outbox events
        that tag the record as ours and send it what the catalog holds beyond it."""
        assert finding.customer_id is not None and finding.external_id is not None  # a link names both
        system, now = self._system, self._ctx.clock.now()
        async with self._ctx.uow_factory() as uow:
            customer = await uow.customers.get(finding.customer_id)
            record = await uow.reconcile.seen_record(self._run_id, finding.external_id)
            if (
                customer is None
                or customer.deleted
                or record is None
                or await uow.mappings.get(customer.id, system) is not None
                or await uow.mappings.by_external_id(system, record.external_id) is not None
            ):
                return FixStatus.SKIPPED, "linked, unlinked or deleted meanwhile"
            if email_key(customer.email) != email_key(record.data.email):
                return FixStatus.SKIPPED, "its email changed meanwhile"
            if await uow.create_intents.get(customer.id, system) is not None:
                return FixStatus.SKIPPED, "a create of ours is in flight for it: the worker links that one"
            merged = first_link_data(customer.data, record.data, self._ctx.policy)
            revised = customer.revised(merged, now)
            link = ExternalMapping(
                customer_id=customer.id,
                system=system,
                external_id=record.external_id,
                synced=record.data,
                synced_version=0,
                synced_at=now,
            )
            if revised.data == record.data:
                link = link.synced_to(revised, record.data, now)
            await uow.mappings.save(link)
            # Tagged as ours by the worker (a create that came from there), then what the record
            # lacks of the catalog's content is sent; values taken from it go to every other system.
            await record_change(uow, revised, ChangeKind.CREATED, origin=system)
            if revised.data != record.data:
                await record_change(uow, revised, ChangeKind.UPDATED)
            elif revised is not customer:
                await record_change(uow, revised, ChangeKind.UPDATED, origin=system)
            await uow.reconcile.set_fix_status(self._run_id, finding.subject, FixStatus.APPLIED)
            await uow.commit()
        return FixStatus.APPLIED, None

    async def _mark(self, finding: Finding, status: FixStatus, note: str | None) -> None:
        if status is FixStatus.APPLIED and finding.fix not in (Fix.REFRESH, Fix.IMPORT):
            return  # marked in the fix's own transaction
        async with self._ctx.uow_factory() as uow:
            await uow.reconcile.set_fix_status(self._run_id, finding.subject, status, note)
            await uow.commit()
