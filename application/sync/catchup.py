"""Catch-up: what webhooks should have delivered, read back from each system's own change log.

A webhook endpoint that was down, misconfigured or disabled loses nothing the system still keeps
(Stripe: 30 days of events): every ``interval`` seconds one worker lists each integration's recent
changes and publishes on ``sync.inbound`` those the inbox has not seen -- the very envelopes their
webhooks would have published -- and the worker applies them like any other delivery.

The cursor (one per system, ``sync_cursors``) holds the newest change time seen, as unix seconds.
Change logs stamp whole seconds and may list a change a little after its time, so each poll reads
again from ``overlap`` seconds before it; the inbox makes re-reading harmless, so a poll that
crashes half-way simply runs again. The first poll starts at that moment: what existed before the
installation is reconcile's business, not this (replaying it would import people twice).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import msgspec

from application.ports import Clock, Cursor, Integration, Integrations, MessagePublisher, SyncMetrics, UnitOfWorkFactory
from application.sync.waiting import Backoff, Stopped, keep_trying, logged, sleep_unless_stopped
from application.sync.webhooks import inbound_envelope
from domain.messages import ExternalChange

log = logging.getLogger(__name__)

CURSOR = "changes"
MIN_LEASE = 30.0  # seconds: a lease outlives a slow poll, and a dead poller's passes on soon after


class CatchUp(msgspec.Struct, frozen=True, kw_only=True):
    """What one poll of one system did."""

    system: str
    listed: int  # changes the system listed since the cursor (minus the overlap)
    published: int  # of those, the ones neither applied nor published before: now on sync.inbound
    already_applied: int  # in the inbox (delivered by webhook, or by an earlier poll)
    position: datetime  # where the cursor stands after the poll
    complete: bool = True  # False: stopped before the last page (lease lost, or asked to stop): not stored


class RecentlyPublished:
    """The changes one poller has published and the worker may not have applied yet: the overlap
    lists them again, and publishing them at every poll while a consumer lags would only add
    duplicates for the inbox to drop. Only those younger than the overlap are kept (the others are
    not listed again), so this stays the size of one overlap's worth of changes."""

    def __init__(self) -> None:
        self._at: dict[str, datetime] = {}

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._at

    def add(self, changes: list[ExternalChange]) -> None:
        self._at.update((change.event_id, change.occurred_at) for change in changes)

    def forget_before(self, at: datetime) -> None:
        self._at = {event_id: when for event_id, when in self._at.items() if when >= at}


def lease_seconds(interval: float) -> float:
    """Long enough that the holder renews it in time; short enough that another worker takes over soon."""
    return max(3 * interval, MIN_LEASE)


async def catch_up_once(
    integration: Integration,
    uow_factory: UnitOfWorkFactory,
    publisher: MessagePublisher,
    clock: Clock,
    owner: str,
    overlap: float,
    *,
    lease: float = MIN_LEASE,
    stopping: asyncio.Event | None = None,
    recently: RecentlyPublished | None = None,
    began: datetime | None = None,
) -> CatchUp | None:
    """Take (or renew) the lease of ``integration``'s cursor and publish what its change log holds
    that the inbox has not seen (nor this poller published lately: ``recently``), one page at a
    time, newest page first and oldest first within a page; then move the cursor to the newest
    change seen (never back). ``None``: another poller holds the lease, so nothing was read.
    Several pollers at once only publish twice what the inbox then drops. ``began``: when this
    poller started, the floor of a first poll (not the moment a first poll that failed is tried
    again: what changed meanwhile would be left out)."""
    system = integration.system
    cursor = await _lease(uow_factory, system, owner, clock, lease)
    if cursor is None:
        return None
    recently = recently if recently is not None else RecentlyPublished()
    position, floor = _position(cursor)
    start = position or clock.now()
    if floor is None:  # the first poll; or a cursor stored before floors were kept (no floor then)
        floor = min(began or start, start) if position is None else start - timedelta(seconds=overlap)
    # Never before the first poll (or the first sync's start): what came before is a reconcile's
    # business (replaying it would import people a first sync has yet to match).
    since, newest = max(start - timedelta(seconds=overlap), floor), start
    counts = {"listed": 0, "published": 0, "already_applied": 0}
    page_cursor: str | None = None
    while True:
        page = await integration.recent_changes(since=since, cursor=page_cursor)
        unapplied = await _unapplied(uow_factory, system, page.changes, owner, clock, lease, renew=page_cursor is not None)
        if unapplied is None:  # the lease passed to another poller meanwhile: it carries on from here
            return CatchUp(system=system, position=start, complete=False, **counts)
        fresh = [change for change in unapplied if change.event_id not in recently]
        if fresh:
            await publisher.publish([inbound_envelope(change) for change in reversed(fresh)])
        recently.add(fresh)
        counts["listed"] += len(page.changes)
        counts["published"] += len(fresh)
        counts["already_applied"] += len(page.changes) - len(unapplied)
        newest = max([newest, *(change.occurred_at for change in page.changes)])
        recently.forget_before(newest - timedelta(seconds=overlap))
        page_cursor = page.next_cursor
        if page_cursor is None:
            break
        if stopping is not None and stopping.is_set():  # the rest is read again after the restart
            return CatchUp(system=system, position=start, complete=False, **counts)
    async with uow_factory() as uow:
        stored = await uow.cursors.advance(system, CURSOR, owner, _encode(newest, floor), clock.now())
        await uow.commit()
    return CatchUp(system=system, position=newest if stored else start, complete=stored, **counts)


async def start_from(uow_factory: UnitOfWorkFactory, system: str, at: datetime, owner: str, clock: Clock) -> bool:
    """Make catch-up's first poll of ``system`` read from ``at`` (minus the overlap) rather than
    from the moment it starts, if it has never polled it: a first-sync reconcile calls this with
    its start, so that what changes between its list and the worker's first poll is not missed
    (re-reading what the list already showed is harmless). ``True`` if the cursor was set."""
    async with uow_factory() as uow:
        now = clock.now()
        cursor = await uow.cursors.lease(system, CURSOR, owner, now + timedelta(seconds=MIN_LEASE), now)
        stored = (
            cursor is not None
            and _position(cursor)[0] is None
            and await uow.cursors.advance(system, CURSOR, owner, _encode(at, at), now)
        )
        if cursor is not None:
            await uow.cursors.release(system, CURSOR, owner)
        await uow.commit()
    return bool(stored)


async def run_catch_up(
    integrations: Integrations,
    uow_factory: UnitOfWorkFactory,
    publisher: MessagePublisher,
    clock: Clock,
    stopping: asyncio.Event,
    *,
    owner: str,
    interval: float,
    overlap: float,
    max_delay: float = 30.0,
    metrics: SyncMetrics | None = None,
) -> None:
    """Poll every integration every ``interval`` seconds until ``stopping`` is set, then give the
    leases up so that another worker takes over at once."""
    if not integrations:
        await stopping.wait()  # nothing to poll; ending early would stop the whole worker
        return
    await asyncio.gather(
        *(
            _poll(integration, uow_factory, publisher, clock, stopping, owner, interval, overlap, max_delay, metrics)
            for integration in integrations.values()
        )
    )


async def _poll(
    integration: Integration,
    uow_factory: UnitOfWorkFactory,
    publisher: MessagePublisher,
    clock: Clock,
    stopping: asyncio.Event,
    owner: str,
    interval: float,
    overlap: float,
    max_delay: float,
    metrics: SyncMetrics | None,
) -> None:
    """An outage (the database, the broker, the system itself) is waited out, one line per attempt,
    with jittered backoff never longer than the interval: the missed changes wait in the log."""
    system, recently, began = integration.system, RecentlyPublished(), clock.now()
    logged_wait, recovered = logged(log, f"{system} catch-up")

    def waiting(error: Exception, delay: float, failures: int) -> None:
        if metrics is not None:
            metrics.caught_up(system, listed=0, published=0, failed=True)
        logged_wait(error, delay, failures)

    # Never longer than the interval between polls (a Retry-After is honoured up to the cap).
    backoff = Backoff(cap=min(interval, max_delay), honour_up_to=max_delay)
    try:
        while not stopping.is_set():
            try:
                done = await keep_trying(
                    lambda: catch_up_once(
                        integration,
                        uow_factory,
                        publisher,
                        clock,
                        owner,
                        overlap,
                        lease=lease_seconds(interval),
                        stopping=stopping,
                        recently=recently,
                        began=began,
                    ),
                    clock=clock,
                    stopping=stopping,
                    backoff=backoff,
                    waiting=waiting,
                    recovered=recovered,
                )
            except Stopped:
                return
            if metrics is not None and done is not None:
                metrics.caught_up(system, listed=done.listed, published=done.published, failed=False)
            if done is not None and done.published:
                log.info(
                    "%s catch-up: %d change(s) not applied yet published to sync.inbound, %d already applied",
                    system,
                    done.published,
                    done.already_applied,
                )
            await sleep_unless_stopped(clock, interval, stopping)
    finally:
        await _release(uow_factory, system, owner)


async def _lease(uow_factory: UnitOfWorkFactory, system: str, owner: str, clock: Clock, seconds: float) -> Cursor | None:
    async with uow_factory() as uow:
        now = clock.now()
        cursor = await uow.cursors.lease(system, CURSOR, owner, now + timedelta(seconds=seconds), now)
        await uow.commit()
    return cursor


async def _unapplied(
    uow_factory: UnitOfWorkFactory,
    system: str,
    changes: list[ExternalChange],
    owner: str,
    clock: Clock,
    lease: float,
    *,
    renew: bool,
) -> list[ExternalChange] | None:
    """The changes the inbox has not seen (renewing the lease, if asked, in the same transaction);
    ``None`` if the lease is someone else's now."""
    async with uow_factory() as uow:
        if renew:
            now = clock.now()
            if await uow.cursors.lease(system, CURSOR, owner, now + timedelta(seconds=lease), now) is None:
                return None
        seen = await uow.inbox.seen_many(system, [change.event_id for change in changes])
        await uow.commit()
    return [change for change in changes if change.event_id not in seen]


async def _release(uow_factory: UnitOfWorkFactory, system: str, owner: str) -> None:
    try:
        async with uow_factory() as uow:
            await uow.cursors.release(system, CURSOR, owner)
            await uow.commit()
    except Exception as exc:
        log.warning("%s catch-up: could not give its lease up (%s); it expires by itself", system, exc)


def _position(cursor: Cursor) -> tuple[datetime | None, datetime | None]:
    """``<newest change seen>/<floor>`` in unix seconds: the floor is where catch-up began (its first
    poll, or the first sync's start), before which it never reads."""
    try:
        newest, _, floor = (cursor.position or "").partition("/")
        return (
            datetime.fromtimestamp(int(newest), UTC) if newest else None,
            datetime.fromtimestamp(int(floor), UTC) if floor else None,
        )
    except (ValueError, OverflowError, OSError):
        return None, None  # not ours to read: start afresh, as on the first poll


def _encode(at: datetime, floor: datetime) -> str:
    return f"{int(at.timestamp())}/{int(floor.timestamp())}"
