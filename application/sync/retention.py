"""Retention: the worker forgets what sync no longer needs, and scrubs deleted customers' personal data.

Every hour a pass deletes, table by table, published outbox events, inbox entries, succeeded sync
records and replayed dead letters older than ``RETENTION_DAYS``, in batches of at most 1,000 rows,
each its own short transaction, at most 10 batches per table; then it scrubs the deleted customers
whose deletion has settled (``domain.retention.deletion_settled``). A pass that stopped with more
to do is followed by the next after a second's pause instead of an hour, so a backlog (the first
pass on an old database) drains at a steady pace and never in one long transaction. What each
table keeps, and why that is safe, is in docs/operations/retention.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import msgspec

from application.ports import Clock, RetentionRepository, ScrubCandidate, UnitOfWorkFactory
from application.sync.waiting import Backoff, Stopped, keep_trying, logged, sleep_unless_stopped
from domain.retention import deletion_settled

log = logging.getLogger(__name__)

PASS_INTERVAL = 3600.0  # seconds between passes
BUSY_PAUSE = 1.0  # seconds between passes while there is more to do than one pass may do
BATCH_SIZE = 1_000  # rows per statement (and transaction)
MAX_BATCHES = 10  # statements per table per pass
SCRUB_BATCH = 50  # deleted customers read at a time


class RetentionPass(msgspec.Struct, frozen=True, kw_only=True):
    """What one pass did: rows deleted per table, and the deleted customers it scrubbed."""

    outbox: int = 0  # published events
    inbox: int = 0
    sync_records: int = 0  # succeeded ones
    dead_letters: int = 0  # replayed (or dismissed) ones
    customers_scrubbed: int = 0
    rows_scrubbed: int = 0  # stored rows rewritten without a deleted customer's personal data
    more: bool = False  # it stopped at its bounds with more to do: the next pass comes soon

    @property
    def changed(self) -> bool:
        return any((self.outbox, self.inbox, self.sync_records, self.dead_letters, self.customers_scrubbed, self.rows_scrubbed))

    def summary(self, days: int) -> str:
        return (
            f"retention: deleted {self.outbox} published outbox event(s), {self.inbox} inbox entr(ies), "
            f"{self.sync_records} succeeded sync record(s) and {self.dead_letters} replayed dead letter(s) older than "
            f"{days} days; scrubbed {self.customers_scrubbed} deleted customer(s) ({self.rows_scrubbed} row(s))"
            + ("; more to do, next pass in a moment" if self.more else "")
        )


Prune = Callable[[RetentionRepository, int], Awaitable[int]]


class Retention:
    """One worker's retention passes. It remembers where its walk through the deleted customers got
    to, so that those whose deletion has not settled yet (one waiting as a dead letter, say) are
    passed over by the next pass rather than read again first by every pass."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        days: int,
        *,
        batch_size: int = BATCH_SIZE,
        max_batches: int = MAX_BATCHES,
        scrub_batch: int = SCRUB_BATCH,
    ) -> None:
        self._uow_factory, self._clock, self.days = uow_factory, clock, days
        self._batch_size, self._max_batches, self._scrub_batch = batch_size, max_batches, scrub_batch
        self._scrub_after: int | None = None

    async def run_pass(self) -> RetentionPass:
        now = self._clock.now()
        before = now - timedelta(days=self.days)
        outbox, more_outbox = await self._prune(lambda r, n: r.prune_outbox(before, n))
        inbox, more_inbox = await self._prune(lambda r, n: r.prune_inbox(before, n))
        records, more_records = await self._prune(lambda r, n: r.prune_sync_records(before, n))
        letters, more_letters = await self._prune(lambda r, n: r.prune_dead_letters(before, n))
        customers, rows, more_scrub = await self._scrub()
        return RetentionPass(
            outbox=outbox,
            inbox=inbox,
            sync_records=records,
            dead_letters=letters,
            customers_scrubbed=customers,
            rows_scrubbed=rows,
            more=more_outbox or more_inbox or more_records or more_letters or more_scrub,
        )

    async def _prune(self, prune: Prune) -> tuple[int, bool]:
        total = 0
        for _ in range(self._max_batches):
            async with self._uow_factory() as uow:
                deleted = await prune(uow.retention, self._batch_size)
                await uow.commit()
            total += deleted
            if deleted < self._batch_size:
                return total, False
        return total, True

    async def _scrub(self) -> tuple[int, int, bool]:
        customers = rows = 0
        for _ in range(self._max_batches):
            async with self._uow_factory() as uow:
                candidates = await uow.retention.unscrubbed(self._scrub_after, self._scrub_batch)
            for candidate in candidates:
                if _ready(candidate) and (done := await self._scrub_one(candidate.customer.id)) is not None:
                    rows += done
                    customers += 1
                self._scrub_after = candidate.customer.id
            if len(candidates) < self._scrub_batch:
                self._scrub_after = None  # walked to the end: the next pass starts from the first again
                return customers, rows, False
        return customers, rows, True

    async def _scrub_one(self, customer_id: int) -> int | None:
        """Its published events first, a batch per transaction (a customer may have thousands), then
        everything else and the mark, in one transaction: a pass cut short anywhere is resumed by
        the next, which finds the customer still unmarked and the scrubbed events skipped."""
        emails: set[str] = set()
        rows = 0
        while True:
            async with self._uow_factory() as uow:
                events = await uow.retention.scrub_events(customer_id, self._batch_size)
                await uow.commit()
            rows += events.rows
            emails |= events.emails
            if events.rows < self._batch_size:
                break
        async with self._uow_factory() as uow:
            done = await uow.retention.scrub_customer(customer_id, frozenset(emails), self._clock.now())
            await uow.commit()
        return None if done is None else rows + done  # None: a call of it went out meanwhile (not settled)


def _ready(candidate: ScrubCandidate) -> bool:
    return deletion_settled(candidate.customer, candidate.mappings, candidate.unpublished, candidate.in_flight)


async def run_retention(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    stopping: asyncio.Event,
    *,
    days: int,
    interval: float = PASS_INTERVAL,
    pause: float = BUSY_PAUSE,
    max_delay: float = 30.0,
    on_pass: Callable[[RetentionPass], None] | None = None,
    retention: Retention | None = None,
) -> None:
    """A pass at once, then every ``interval`` seconds (every ``pause`` while there is more to do),
    until ``stopping`` is set; ``on_pass`` hears what each did. An outage is waited out with
    jittered backoff, one line per attempt; what the pass had not done waits for the next."""
    retention = retention or Retention(uow_factory, clock, days)
    waiting, recovered = logged(log, "retention pass")
    while not stopping.is_set():
        try:
            done = await keep_trying(
                retention.run_pass,
                clock=clock,
                stopping=stopping,
                backoff=Backoff(cap=max_delay),
                waiting=waiting,
                recovered=recovered,
            )
        except Stopped:
            return
        # A pass that found nothing to do says so only at DEBUG: an idle line every hour is noise.
        log.log(logging.INFO if done.changed else logging.DEBUG, "%s", done.summary(retention.days))
        if on_pass is not None:
            on_pass(done)
        await sleep_unless_stopped(clock, pause if done.more else interval, stopping)
