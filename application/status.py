"""The status screen: one read an on-call engineer starts with (``custsync status``,
``GET /api/v1/status``), and the figures the worker samples into its metrics.

Each figure is one aggregate query (or one broker request); the one that walks the catalog is
the count of customers not in sync (``StatusRepository.out_of_sync``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from application.errors import BackendUnavailable
from application.ports import Clock, ConsumerLag, Integrations, SyncActivity, UnitOfWorkFactory
from application.sync.catchup import CURSOR
from domain.drift import ReconcileRun

ERROR_WINDOW = timedelta(hours=1)  # the error rate is of the changes settled or failing in the last hour


class IntegrationStatus(msgspec.Struct, frozen=True, kw_only=True):
    system: str
    activity: SyncActivity
    error_rate: float | None  # failing / (settled + failing) in the window; None: no activity
    out_of_sync: dict[str, int]
    last_catch_up: datetime | None  # when its change log was last polled to the end
    last_reconcile: ReconcileRun | None


class StatusReport(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    outbox_backlog: int
    outbox_oldest: datetime | None
    outbox_oldest_age_seconds: float
    # Per worker group (``catalog``: sync.inbound; a system: its sync.outbound), per "topic:partition";
    # None: the broker could not be asked.
    lag: dict[str, dict[str, int]] | None
    lag_error: str | None
    dead_letters_waiting: dict[str, int]
    integrations: list[IntegrationStatus]


async def read_status(uow_factory: UnitOfWorkFactory, integrations: Integrations, lag: ConsumerLag, clock: Clock) -> StatusReport:
    """Everything on one screen. The database must answer (BackendUnavailable otherwise); the
    broker need not: its lag is then reported as unknown, with why."""
    now = clock.now()
    async with uow_factory() as uow:
        backlog, oldest = await uow.status.outbox_backlog()
        letters = await uow.status.dead_letters_waiting()
        systems = []
        for system in integrations:
            activity = await uow.status.activity(system, now - ERROR_WINDOW)
            cursor = await uow.cursors.get(system, CURSOR)
            runs = await uow.reconcile.runs(system, 1)
            total = activity.settled + activity.failing
            systems.append(
                IntegrationStatus(
                    system=system,
                    activity=activity,
                    error_rate=activity.failing / total if total else None,
                    out_of_sync=await uow.status.out_of_sync(system),
                    last_catch_up=cursor.updated_at if cursor is not None and cursor.position is not None else None,
                    last_reconcile=runs[0] if runs else None,
                )
            )
    lags: dict[str, dict[str, int]] | None = None
    lag_error = None
    try:
        lags = {}
        for (group, topic, partition), n in sorted((await lag.lag()).items()):
            lags.setdefault(group, {})[f"{topic}:{partition}"] = n
    except BackendUnavailable as exc:
        lags = None
        lag_error = str(exc)
    return StatusReport(
        at=now,
        outbox_backlog=backlog,
        outbox_oldest=oldest,
        outbox_oldest_age_seconds=0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()),
        lag=lags,
        lag_error=lag_error,
        dead_letters_waiting=letters,
        integrations=systems,
    )
