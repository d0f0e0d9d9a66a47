"""``POST /api/v1/webhooks/{system}``: verify, hand to ``sync.inbound``, answer in milliseconds."""

from __future__ import annotations

from litestar import post
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK

from application.errors import InvalidWebhook, UnknownSystem, WebhookNotConfigured
from application.sync.webhooks import receive_webhook
from entrypoints.http.deps import ServicesDep
from entrypoints.http.guards import refuse_control_characters
from entrypoints.http.openapi import problems
from entrypoints.http.schemas import WebhookAck
from entrypoints.http.types import AnyRequest

WEBHOOK_MAX_BODY_BYTES = 512 * 1024  # a customer event is a few KiB; metadata caps it well below this


@post(
    "/api/v1/webhooks/{system:str}",
    status_code=HTTP_200_OK,
    tags=["webhooks"],
    request_max_body_size=WEBHOOK_MAX_BODY_BYTES,
    summary="Receive an external system's event (Stripe: signed with Stripe-Signature)",
    responses=problems(400, 404, 413, 422, 503),
)
async def webhook(
    system: FromPath[str],
    request: AnyRequest,
    services: ServicesDep,
) -> WebhookAck:
    # As the other routes' guard does, without a guard's cost (Litestar copies the handler per guard).
    refuse_control_characters(request)
    metrics = services.metrics
    label = system if system in services.integrations else "unknown"  # a label is never what a caller made up
    # The signature covers the raw bytes, so the body is read as bytes, never parsed first.
    try:
        receipt = await receive_webhook(
            system,
            await request.body(),
            request.headers,
            services.webhook_sources,
            services.publisher,
            services.uow_factory,
            services.clock,
        )
    except InvalidWebhook as exc:
        metrics.webhook(label, "rejected", exc.reason)
        raise
    except WebhookNotConfigured:
        metrics.webhook(label, "rejected", "not_configured")
        raise
    except UnknownSystem:
        metrics.webhook(label, "rejected", "unknown_system")
        raise
    if receipt.rejected is not None:
        metrics.webhook(label, "rejected", "refused")
        return WebhookAck(received=True, rejected=receipt.rejected)
    if receipt.change is None:
        metrics.webhook(label, "ignored")
        return WebhookAck(received=True, ignored=True)
    metrics.webhook(label, "accepted")
    return WebhookAck(received=True, event_id=receipt.change.event_id)
