from __future__ import annotations

from collections.abc import Mapping

from application.errors import UnknownSystem
from application.ports import Envelope, Integrations, MessagePublisher
from domain.messages import INBOUND_TOPIC, ExternalChange, encode


async def receive_webhook(
    system: str, payload: bytes, headers: Mapping[str, str], integrations: Integrations, publisher: MessagePublisher
) -> ExternalChange | None:
    """Verify a webhook and hand its change to ``sync.inbound``; nothing else on the request path.

    Returns ``None`` for event types the integration ignores. Raises InvalidWebhook, in which case
    nothing was published.
    """
    integration = integrations.get(system)
    if integration is None:
        raise UnknownSystem(system)
    change = integration.parse_webhook(payload, headers)
    if change is not None:
        # Keyed by the external id, so that one customer's changes stay in order on one partition.
        await publisher.publish([Envelope(INBOUND_TOPIC, f"{system}:{change.external_id}", change.event_id, encode(change))])
    return change
