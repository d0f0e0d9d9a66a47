"""The outbox relay: publish committed integration events, in order, then mark them published."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from application.ports import Clock, Envelope, MessagePublisher, UnitOfWorkFactory
from application.sync.waiting import Backoff, Stopped, keep_trying, logged
from domain.messages import OUTBOUND_TOPIC, CustomerChanged, encode

log = logging.getLogger(__name__)


class OutboxWakeup(Protocol):
    """Signals that events were committed to the outbox (Postgres: LISTEN/NOTIFY)."""

    async def wait(self, timeout: float) -> None:
        """Return when woken, or after ``timeout`` seconds at the latest."""


async def relay_once(uow_factory: UnitOfWorkFactory, publisher: MessagePublisher, clock: Clock, batch_size: int = 200) -> int:
    """Publish one batch (coalesced); returns how many events it settled.

    No other relay claims until this one's mark commits, so concurrent relays never publish the
    same event twice or out of order. A crash after publishing and before the commit publishes the
    batch again: at-least-once, and consumers dedupe by event id.
    """
    async with uow_factory() as uow:
        pending = await uow.relay.claim(batch_size)
        if not pending:
            return 0
        await publisher.publish(
            [Envelope(OUTBOUND_TOPIC, str(e.customer_id), e.event_id, encode(e)) for e in coalesce([p.event for p in pending])]
        )
        await uow.relay.mark_published([p.position for p in pending], clock.now())
        await uow.commit()
    return len(pending)


def coalesce(events: list[CustomerChanged]) -> list[CustomerChanged]:
    """The batch less every event that a later one of the same customer in it stands for
    (``CustomerChanged.stands_for``): a burst of edits goes out as one message. Those left out are
    marked published with the rest; the one that stands for them is pushed in their place."""
    kept: list[CustomerChanged | None] = []
    last: dict[int, int] = {}  # customer -> where its latest event so far is in ``kept``
    for event in events:
        before = last.get(event.customer_id)
        if before is not None and event.stands_for(kept[before]):  # type: ignore[arg-type]
            kept[before] = None
        last[event.customer_id] = len(kept)
        kept.append(event)
    return [e for e in kept if e is not None]


async def run_relay(
    uow_factory: UnitOfWorkFactory,
    publisher: MessagePublisher,
    clock: Clock,
    wakeup: OutboxWakeup,
    stopping: asyncio.Event,
    *,
    poll_interval: float = 1.0,
    batch_size: int = 200,
    max_delay: float = 10.0,
) -> None:
    """Relay until ``stopping`` is set: drain while there is work, then sleep until woken.

    An unavailable database or broker is waited out (capped, jittered backoff, one line per
    attempt): the events stay in the outbox meanwhile, and nothing is lost or sent out of order.
    """
    waiting, recovered = logged(log, "outbox relay")
    backoff = Backoff(base=poll_interval, cap=max_delay)
    while not stopping.is_set():
        try:
            sent = await keep_trying(
                lambda: relay_once(uow_factory, publisher, clock, batch_size),
                clock=clock,
                stopping=stopping,
                backoff=backoff,
                waiting=waiting,
                recovered=recovered,
            )
        except Stopped:
            return
        if sent < batch_size:
            await wakeup.wait(poll_interval)
