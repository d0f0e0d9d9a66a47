"""Creates: saved before they are sent, repeated exactly, and never made twice.

A create intent (key and fields) is saved before the create is sent; every later attempt repeats
exactly that request, so Stripe answers with the customer it already made. When its answer is
lost for good -- a failure Stripe replays for our key, a key that may have expired -- the list is
asked (``find_own_create``) and the customer found is linked, or the create is sent again under a
new key. A create Stripe refused drops its intent: the next attempt sends the current state.
"""

from __future__ import annotations

from datetime import datetime

from application.customers.changes import record_change
from application.errors import (
    CreateFailed,
    CreateRefused,
    IdempotentReplayFailure,
    NothingCreated,
    PermanentIntegrationError,
    RequestRefused,
)
from application.ports import Integration, UnitOfWork
from application.sync.context import SyncContext as Context
from application.sync.lookup import find_own_create
from domain.customer import Customer
from domain.mapping import CreateIntent, ExternalMapping
from domain.messages import ChangeKind, ExternalCustomer
from domain.ownership import OwnershipTag, write_key


async def create_intent(uow: UnitOfWork, customer: Customer, system: str, ctx: Context) -> CreateIntent:
    """The create to send, saved before it is sent; an earlier one, if any, is repeated as it was."""
    await uow.create_intents.add(
        CreateIntent(
            customer_id=customer.id,
            system=system,
            idempotency_key=write_key(ctx.installation, "create"),
            data=customer.data,
            created_at=ctx.clock.now(),
        )
    )
    intent = await uow.create_intents.get(customer.id, system)
    await uow.commit()
    assert intent is not None
    return intent


async def create(integration: Integration, customer: Customer, intent: CreateIntent, ctx: Context) -> ExternalCustomer:
    """The customer ``intent`` makes (or made: found by a look-up when its answer was lost)."""
    found = None
    if intent.key_may_have_expired(ctx.clock.now()):
        found = await look_up_or_renew(integration, intent, ctx, "its idempotency key may have expired")
    else:
        await ctx.accounts.verify(integration)  # a create is the one write another account takes silently
        tag = OwnershipTag(internal_id=customer.id, installation=ctx.installation, create_key=intent.idempotency_key)
        try:
            found = await integration.create_customer(intent.data, tag=tag, idempotency_key=intent.idempotency_key)
        except IdempotentReplayFailure as exc:
            found = await look_up_or_renew(integration, intent, ctx, str(exc))
        except RequestRefused as exc:
            raise CreateRefused(str(exc)) from exc
        except PermanentIntegrationError as exc:
            # A failure that does not say the data was refused (a 500 Stripe says not to retry):
            # the create may have been made all the same. Only the list can tell.
            found = await find_own_create(integration, intent, ctx.installation)
            if found is None:
                raise CreateFailed(f"{exc}; a look-up found nothing our create made") from exc
    return found


async def look_up_or_renew(integration: Integration, intent: CreateIntent, ctx: Context, why: str) -> ExternalCustomer:
    found = await find_own_create(integration, intent, ctx.installation)
    if found is None:
        raise NothingCreated(f"{why}; a look-up found nothing our create made: it is sent again under a new key")
    return found


async def store_create(
    uow: UnitOfWork,
    created: ExternalCustomer,
    intent: CreateIntent,
    customer: Customer,
    mapping: ExternalMapping | None,
    now: datetime,
) -> None:
    await uow.create_intents.remove(customer.id, intent.system)
    current = await uow.customers.get(customer.id) or customer
    if mapping is not None:
        # The create's own event linked it first (inbound owns that baseline now): only send what
        # the catalog holds beyond it.
        if current.deleted or current.data != mapping.synced:
            await record_change(uow, current, ChangeKind.DELETED if current.deleted else ChangeKind.UPDATED)
        return
    mapping = ExternalMapping(
        customer_id=customer.id,
        system=intent.system,
        external_id=created.external_id,
        synced=intent.data,
        synced_version=0,
        synced_at=now,
    )
    if current.data == intent.data and not current.deleted:
        await uow.mappings.save(mapping.synced_to(current, intent.data, now))
        return
    await uow.mappings.save(mapping.rebased(intent.data, now))
    # Created with the fields of an earlier attempt: send what changed (or the deletion) since.
    await record_change(uow, current, ChangeKind.DELETED if current.deleted else ChangeKind.UPDATED)
