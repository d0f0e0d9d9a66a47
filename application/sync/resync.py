"""Re-sync one customer: the operator's tool when one record looks wrong.

A push sends the catalog's current state there, whatever the baseline and the conflict policy say
(an outbox event marked ``forced``); a pull takes the external record's current state into the
catalog the same way (a ``forced`` change on ``sync.inbound``). Both travel the usual paths, so
the worker applies them in order with that customer's other changes, and the history shows them.
Neither brings a deleted customer back: a customer deleted here stays deleted, and one deleted
there is deleted here (a deletion is final on both sides).
"""

from __future__ import annotations

from enum import StrEnum

from application.customers.changes import existing_customer, record_change
from application.errors import NotLinked, UnknownSystem
from application.ports import Clock, Envelope, Integrations, MessagePublisher, UnitOfWorkFactory
from domain.messages import INBOUND_TOPIC, ChangeKind, ExternalChange, ExternalCustomer, encode, new_event_id


class Direction(StrEnum):
    PUSH = "push"  # the catalog's state goes there
    PULL = "pull"  # the external state comes here


async def resync(
    customer_id: int,
    system: str,
    direction: Direction,
    integrations: Integrations,
    uow_factory: UnitOfWorkFactory,
    publisher: MessagePublisher,
    clock: Clock,
) -> str:
    """Queue the re-sync; returns the id of the event that carries it (its sync record, in the
    customer's history, tells how it went). CustomerNotFound, NotLinked (a pull without a link)."""
    if system not in integrations:
        raise UnknownSystem(system)
    async with uow_factory() as uow:
        customer = await existing_customer(uow, customer_id)
        mapping = await uow.mappings.get(customer_id, system)
        if direction is Direction.PUSH:
            kind = ChangeKind.UPDATED if mapping is not None else ChangeKind.CREATED
            event_id = await record_change(uow, customer, kind, forced_for=system)
            await uow.commit()
            return event_id
    if mapping is None:
        raise NotLinked(customer_id, system)
    change = ExternalChange(
        event_id=f"resync-{new_event_id()}",
        system=system,
        kind=ChangeKind.UPDATED,
        external_id=mapping.external_id,
        occurred_at=clock.now(),
        customer=ExternalCustomer.unread(mapping.external_id),
        observed=True,
        forced=True,
    )
    await publisher.publish([Envelope(INBOUND_TOPIC, f"{system}:{mapping.external_id}", change.event_id, encode(change))])
    return change.event_id
