from __future__ import annotations

from collections.abc import Mapping

import msgspec

from application.correlation import current_correlation
from application.errors import RefusedWebhook, UnknownSystem
from application.ports import Clock, Envelope, MessagePublisher, UnitOfWorkFactory, WebhookSources
from domain.messages import INBOUND_TOPIC, REJECTED_WEBHOOK_TOPIC, ExternalChange, encode


class Receipt(msgspec.Struct, frozen=True):
    change: ExternalChange | None  # None: an event type the integration ignores, or one refused
    rejected: str | None = None  # why a genuine event was refused (it is kept with the dead letters)


async def receive_webhook(
    system: str,
    payload: bytes,
    headers: Mapping[str, str],
    sources: WebhookSources,
    publisher: MessagePublisher,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
) -> Receipt:
    """Verify a webhook and hand its change to ``sync.inbound``: no external call and no database
    round trip on the request path. Raises InvalidWebhook, in which case nothing was published.

    An event Stripe delivers twice is published twice, and the worker's inbox (one indexed lookup
    in the transaction that applies it) drops the second. A check here would cost every webhook a
    database transaction to save the rare redelivery one Kafka message.
    """
    source = sources.get(system)
    if source is None:  # not configured, or a system that sends no webhooks
        raise UnknownSystem(system)
    try:
        change = source.parse_webhook(payload, headers)
    except RefusedWebhook as exc:
        # Signed, so genuine; redelivering it cannot help (Stripe would for three days): keep it
        # where operators look for what sync gave up on, and acknowledge it.
        async with uow_factory() as uow:
            letter = Envelope(REJECTED_WEBHOOK_TOPIC, system, exc.event_id, payload, error=f"rejected: {exc.reason}")
            await uow.dead_letters.add(letter, clock.now())
            await uow.commit()
        return Receipt(None, rejected=exc.reason)
    if change is None:
        return Receipt(None)
    if (correlation := current_correlation()) is not None:
        change = msgspec.structs.replace(change, correlation_id=correlation)
    await publisher.publish([inbound_envelope(change)])
    return Receipt(change)


def inbound_envelope(change: ExternalChange) -> Envelope:
    """A change on ``sync.inbound``, the same whoever found it (a webhook, or catch-up): keyed by
    the external id, so that one customer's changes stay in order on one partition."""
    return Envelope(INBOUND_TOPIC, f"{change.system}:{change.external_id}", change.event_id, encode(change))
