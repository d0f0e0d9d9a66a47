"""Dead letters: list what the worker gave up on, and replay it once the cause is fixed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from application.ports import Clock, Envelope, MessagePublisher, SyncMetrics, UnitOfWork, UnitOfWorkFactory
from domain.dead_letters import DeadLetter
from domain.errors import DeadLetterNotFound
from domain.messages import SYNC_TOPICS
from domain.sync import SyncRecord, SyncStatus

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


async def list_dead_letters(uow: UnitOfWork, limit: int = DEFAULT_LIMIT, include_replayed: bool = False) -> list[DeadLetter]:
    """Newest first; only those waiting for a replay unless ``include_replayed``."""
    async with uow:
        return await uow.dead_letters.list(max(1, min(limit, MAX_LIMIT)), include_replayed)


async def replay_dead_letters(
    ids: Sequence[int] | None,
    uow_factory: UnitOfWorkFactory,
    publisher: MessagePublisher,
    clock: Clock,
    metrics: SyncMetrics | None = None,
) -> list[int]:
    """Send dead letters back to the topics they came from, in the order they first died; returns
    their ids. ``None`` replays every letter not yet replayed (none: nothing happens).

    Named ids must all be waiting for a replay, else DeadLetterNotFound names the unknown and the
    already-replayed ones and nothing is replayed. A letter that dies again comes back to the list.
    A refused webhook (not from a sync topic) has nowhere to go back to: replaying it dismisses it.
    """
    async with uow_factory() as uow:
        letters = await uow.dead_letters.unreplayed(ids)
        if ids is not None:
            await _all_found(uow, ids, letters)
        if not letters:
            return []
        now = clock.now()
        dead = await _reopen_dead_records(uow, letters, now)
        # Committed before publishing: the worker may take the message at once, and must not find
        # the record still dead. Published before marking: a crash in between replays it again
        # next time (handlers are idempotent) rather than marking a letter that never went out.
        await uow.commit()
        try:
            await publisher.publish([Envelope(d.topic, d.key, d.event_id, d.payload) for d in letters if d.topic in SYNC_TOPICS])
        except Exception:
            await _restore(uow, dead, now)
            raise
        for letter in letters:
            await uow.dead_letters.mark_replayed(letter, now)
        await uow.commit()
    if metrics is not None:
        for letter in letters:
            metrics.replayed(letter.topic)
    return [d.id for d in letters]


async def _reopen_dead_records(uow: UnitOfWork, letters: list[DeadLetter], now: datetime) -> list[SyncRecord]:
    """A dead sync record is settled, and the handlers skip settled events: make it pending again."""
    dead = [r for d in letters for r in await uow.sync_records.for_event(d.event_id) if r.status is SyncStatus.DEAD]
    for record in dead:
        await uow.sync_records.save(record.reopened(now))
    return dead


async def _restore(uow: UnitOfWork, dead: list[SyncRecord], now: datetime) -> None:
    """Nothing was replayed: the records read dead again, not pending -- those no worker touched
    meanwhile (a publish that timed out may still have gone out)."""
    for record in dead:
        if await uow.sync_records.get(record.event_id, record.system, record.direction) == record.reopened(now):
            await uow.sync_records.save(record)
    await uow.commit()


async def _all_found(uow: UnitOfWork, ids: Sequence[int], letters: list[DeadLetter]) -> None:
    found = {d.id for d in letters}
    missing = sorted(set(ids) - found)
    if not missing:
        return
    unknown: list[int] = []
    replayed: list[int] = []
    for letter_id in missing:
        (unknown if await uow.dead_letters.get(letter_id) is None else replayed).append(letter_id)
    raise DeadLetterNotFound(unknown, replayed)
