"""The key starts answering for another account while the worker runs: sync pauses -- no link is
broken one by one and no customer is created in the other account (found by the hostile review)."""

import asyncio

from adapters.memory.stripe import InMemoryStripe
from application.accounts import check_bindings
from application.commands import CreateCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.update import patch_customer


async def run_until_paused(system, clock, pauses: int = 3) -> None:
    """Let the worker run until it has paused ``pauses`` times (credentials refused: 60 s each)."""
    stopping = asyncio.Event()
    worker = asyncio.create_task(system.consumer.run_once(stopping))
    for _ in range(2000):
        if clock.slept.count(60.0) >= pauses or worker.done():
            break
        await asyncio.sleep(0)
    stopping.set()
    await asyncio.wait_for(worker, 5)


async def test_a_mid_run_account_swap_pauses_instead_of_writing_to_the_other_account(system, clock):
    await check_bindings(system.container.integrations(), system.uow_factory, clock)
    first = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), clock)
    await system.settle()
    other = InMemoryStripe(clock, account_id="acct_other")
    system.use_stripe(other)  # the same key, answering for another account from now on
    clock.advance(10)  # the account is checked before a create at most every 10 s (the window it leaves)
    await patch_customer(PatchCustomer(customer_id=first.id, changes={"name": "Ada L."}), system.uow_factory(), clock)
    await create_customer(CreateCustomer("Grace", "grace@example.com"), system.uow_factory(), clock)
    await system.relay()
    await run_until_paused(system, clock)
    assert clock.slept.count(60.0) >= 1  # paused, as for refused credentials
    assert other.customers == {}  # nothing created over there
    mapping = await system.mapping(first.id)
    assert mapping.broken is None  # not this customer's fault: its link is not marked broken
    assert system.messages("sync.outbound.dlq") == []  # nothing given up on: it waits
