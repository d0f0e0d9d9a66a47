"""The account-wide budget against a server that enforces Stripe's rate limit: paced calls are never
refused, unpaced ones are (so the server's limit is real, and the budget is what avoids it)."""

import asyncio

import stripe

from adapters.budget import InMemoryLedger, RateBudget
from adapters.clock import SystemClock
from adapters.stripe.limiter import RateLimited
from adapters.stripe.sdk import stripe_client
from tests.support.stripe_server import StripeServer

RATE = 20


async def burst(customers, n: int) -> int:
    refused = 0

    async def one(i: int) -> None:
        nonlocal refused
        try:
            await customers.create_async(params={"name": f"C{i}"})
        except stripe.RateLimitError:
            refused += 1

    await asyncio.gather(*(one(i) for i in range(n)))
    return refused


async def test_the_server_refuses_what_goes_over_its_limit_and_the_budget_keeps_under_it():
    with StripeServer(rate_limit=RATE) as server:
        client = stripe_client("sk_test_budget", api_base=server.url, timeout=10)
        assert await burst(client.v1.customers, 2 * RATE) >= RATE - 1  # unpaced: Stripe's 429s
        await asyncio.sleep(1.1)
        clock = SystemClock()
        ledger = InMemoryLedger(RATE, clock)
        workers = [RateLimited(client.v1.customers, RateBudget(RATE, clock, ledger)) for _ in range(2)]
        before = server.rate_limited
        refused = await asyncio.gather(*(burst(w, RATE) for w in workers))  # two processes, one account
        assert sum(refused) == 0 and server.rate_limited == before


async def test_the_server_counts_reads_and_writes_apart_as_stripe_does():
    with StripeServer(rate_limit=RATE) as server:
        client = stripe_client("sk_test_budget", api_base=server.url, timeout=10)
        customers = client.v1.customers
        refused_reads = 0

        async def read() -> None:
            nonlocal refused_reads
            try:
                await customers.list_async(params={"limit": 1})
            except stripe.RateLimitError:
                refused_reads += 1

        writes, _ = await asyncio.gather(burst(customers, RATE - 2), asyncio.gather(*(read() for _ in range(RATE - 2))))
        assert writes == 0 and refused_reads == 0 and server.rate_limited == 0  # 2 x RATE - 4 in a moment, each kind under RATE
