"""Edits people make, drawn by hypothesis: through the catalog's API and in Stripe's dashboard.
The property tests' steps (two-way and three-way) share them; the draws come in the same order
whoever calls, so a failing example replays alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hypothesis import strategies as st

from adapters.memory.stripe import InMemoryStripe
from application.commands import CreateCustomer, DeleteCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.delete import delete_customer
from application.customers.update import patch_customer
from application.ports import Clock, UnitOfWorkFactory
from domain.errors import CustomerNotFound

CATALOG_EDITS = ("api_create", "api_update", "api_delete")
STRIPE_EDITS = ("stripe_create", "stripe_update", "stripe_delete")


async def catalog_edit(
    op: str,
    data: st.DataObject,
    uow: UnitOfWorkFactory,
    clock: Clock,
    alive: Callable[[], Awaitable[list[int]]],
    names: st.SearchStrategy,
    emails: st.SearchStrategy,
    deleted: set[int],
) -> None:
    """``op`` (one of CATALOG_EDITS) through the use cases, on a live customer drawn from ``alive()``."""
    if op == "api_create":
        await create_customer(CreateCustomer(data.draw(names), data.draw(emails)), uow(), clock)
        return
    if not (ids := await alive()):
        return
    customer_id = data.draw(st.sampled_from(ids))
    try:
        if op == "api_update":
            field = data.draw(st.sampled_from(["name", "email"]))
            value = data.draw(names if field == "name" else emails)
            await patch_customer(PatchCustomer(customer_id=customer_id, changes={field: value}), uow(), clock)
        else:
            await delete_customer(DeleteCustomer(customer_id=customer_id), uow(), clock)
            deleted.add(customer_id)
    except CustomerNotFound:
        pass


async def stripe_edit(
    op: str,
    data: st.DataObject,
    stripe: InMemoryStripe,
    names: st.SearchStrategy,
    emails: st.SearchStrategy,
    deleted: set[str],
) -> None:
    """``op`` (one of STRIPE_EDITS) as a person makes it in Stripe, on a customer Stripe still has."""
    if op == "stripe_create":
        params = {k: v for k, v in (("name", data.draw(names)), ("email", data.draw(emails))) if v}
        await stripe.create_async(params=params)
        return
    if not (ids := sorted(stripe.customers)):
        return
    external_id = data.draw(st.sampled_from(ids))
    if op == "stripe_update":
        field = data.draw(st.sampled_from(["name", "email"]))
        value = data.draw(names if field == "name" else emails)
        await stripe.update_async(external_id, params={field: value or ""})
    else:
        await stripe.delete_async(external_id)
        deleted.add(external_id)
