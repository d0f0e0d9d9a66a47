"""``custsync dev``: API, relay, worker and a fake Stripe in one process, all in memory."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from adapters.memory.stripe import InMemoryStripe
from application.errors import InvalidWebhook
from application.sync.webhooks import receive_webhook
from entrypoints.container import Container
from entrypoints.runtime import Task

log = logging.getLogger("custsync.dev")


async def deliver_stripe_event(container: Container, fake: InMemoryStripe, event: dict[str, Any], secret: str) -> None:
    """One fake-Stripe event delivered as Stripe would: signed, through the webhook use case."""
    payload, signature = fake.signed_event(event, secret)
    await receive_webhook(
        "stripe",
        payload,
        {"stripe-signature": signature},
        container.webhook_sources(),
        container.publisher(),
        container.uow_factory(),
        container.clock(),
    )


def webhook_delivery_task(container: Container, fake: InMemoryStripe, secret: str) -> Task:
    """Deliver the fake Stripe's events like Stripe does: signed, through the webhook use case."""

    async def deliver(stopping: asyncio.Event) -> None:
        delivered = 0
        while not stopping.is_set():
            fake.new_events.clear()
            for event in fake.events[delivered:]:
                try:
                    await deliver_stripe_event(container, fake, event, secret)
                except InvalidWebhook as exc:
                    log.error("fake Stripe webhook refused: %s", exc)
                except Exception:
                    log.exception("fake Stripe webhook %s could not be delivered", event.get("id"))
                delivered += 1
            waiter = asyncio.create_task(fake.new_events.wait())
            stopper = asyncio.create_task(stopping.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()

    return deliver


BANNER = """\
custsync dev: API, outbox relay and sync worker in ONE process, IN MEMORY.
  Nothing is persisted: stopping this process forgets every customer.
  API         http://{host}:{port}/api/v1/customers     docs: http://{host}:{port}/docs
  Stripe side http://{host}:{port}/dev/stripe/customers (the fake Stripe, when STRIPE_SECRET_KEY is unset)
  Stop with Ctrl-C."""

DEV_CATCHUP_INTERVAL = 3.0  # seconds: the fake Salesforce's edits show in the catalog this soon

SALESFORCE_BANNER = """\
  Salesforce  http://{host}:{port}/dev/salesforce/contacts (the fake org: its Contacts are polled every {interval:g}s)"""

REAL_STRIPE_BANNER = """\
  Using the real Stripe API (STRIPE_SECRET_KEY is set). Forward its webhooks here:
    stripe listen --forward-to localhost:{port}/api/v1/webhooks/stripe
  and put the secret it prints in STRIPE_WEBHOOK_SECRET (currently {secret})."""
