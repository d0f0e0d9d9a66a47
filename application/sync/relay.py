"""The outbox relay: publish committed integration events, in order, then mark them published."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from application.ports import Clock, Envelope, MessagePublisher, UnitOfWorkFactory
from domain.messages import OUTBOUND_TOPIC, encode

log = logging.getLogger(__name__)


class OutboxWakeup(Protocol):
    """Signals that events were committed to the outbox (Postgres: LISTEN/NOTIFY)."""

    async def wait(self, timeout: float) -> None:
        """Return when woken, or after ``timeout`` seconds at the latest."""


async def relay_once(uow_factory: UnitOfWorkFactory, publisher: MessagePublisher, clock: Clock, batch_size: int = 200) -> int:
    """Publish one batch; returns how many events went out.

    The batch stays locked until the mark commits, so concurrent relays never publish the same
    event twice or out of order. A crash after publishing and before the commit publishes the
    batch again: at-least-once, and consumers dedupe by event id.
    """
    async with uow_factory() as uow:
        pending = await uow.relay.claim(batch_size)
        if not pending:
            return 0
        await publisher.publish(
            [Envelope(OUTBOUND_TOPIC, str(p.event.customer_id), p.event.event_id, encode(p.event)) for p in pending]
        )
        await uow.relay.mark_published([p.position for p in pending], clock.now())
        await uow.commit()
    return len(pending)


async def run_relay(
    uow_factory: UnitOfWorkFactory, publisher: MessagePublisher, clock: Clock, wakeup: OutboxWakeup,
    stopping: asyncio.Event, *, poll_interval: float = 1.0, batch_size: int = 200,
) -> None:
    """Relay until ``stopping`` is set: drain while there is work, then sleep until woken."""
    while not stopping.is_set():
        try:
            sent = await relay_once(uow_factory, publisher, clock, batch_size)
        except Exception:  # noqa: BLE001 - the relay must outlive a broker or database blip
            log.exception("outbox relay failed; retrying")
            sent = 0
            await clock.sleep(poll_interval)
        if sent < batch_size:
            await wakeup.wait(poll_interval)
