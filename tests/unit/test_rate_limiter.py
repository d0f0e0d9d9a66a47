"""The Stripe request budget, measured on a fake clock: one ledger of time slots, however many
processes draw on it."""

import asyncio
import heapq
from datetime import UTC, datetime, timedelta

import pytest

from adapters.budget import InMemoryLedger, RateBudget
from adapters.stripe.limiter import RateLimited


def budget(clock, rate, ledger=None, max_lease=10):
    return RateBudget(rate, clock, ledger or InMemoryLedger(rate, clock), max_lease=max_lease)


async def paced_calls(clock, limited, n):
    stamps = []
    for i in range(n):
        await limited.create_async(params={"name": f"C{i}"})
        stamps.append(clock.now().timestamp())
    return stamps


def busiest_second(stamps):
    stamps = sorted(stamps)
    return max(sum(1 for s in stamps[i:] if s < t + 1.0 - 1e-9) for i, t in enumerate(stamps))


@pytest.mark.parametrize("rate", [25, 100, 3])
async def test_no_one_second_window_holds_more_calls_than_the_budget(clock, fake_stripe, rate):
    limited = RateLimited(fake_stripe, budget(clock, rate))
    stamps = await paced_calls(clock, limited, 4 * rate)
    assert busiest_second(stamps) == rate
    assert len(fake_stripe.customers) == 4 * rate


async def test_a_backlog_drains_at_the_budget(clock, fake_stripe):
    limited = RateLimited(fake_stripe, budget(clock, 25))
    stamps = await paced_calls(clock, limited, 100)
    assert stamps[-1] - stamps[0] == pytest.approx(99 / 25)


async def test_every_kind_of_call_is_paced(clock, fake_stripe):
    limited = RateLimited(fake_stripe, budget(clock, 10))
    created = await limited.create_async(params={"name": "A"})
    await limited.update_async(created["id"], params={"name": "B"})
    await limited.retrieve_async(created["id"])
    await limited.list_async(params={"limit": 10})
    await limited.delete_async(created["id"])
    assert clock.slept == pytest.approx([0.1] * 4)


async def test_an_idle_budget_saves_nothing_up(clock):
    b = budget(clock, 5)
    clock.advance(3600)
    start = clock.now()
    for _ in range(10):
        await b.acquire()
    assert (clock.now() - start).total_seconds() == pytest.approx(9 / 5)  # evenly paced from the first


class VirtualClock:
    """Time for concurrent sleepers (FakeClock's sleep moves time for everyone): ``run`` lets
    every task go as far as it can, then moves time to the earliest wake-up."""

    def __init__(self):
        self._now, self._sleepers, self._seq = datetime(2026, 1, 1, tzinfo=UTC), [], 0

    def now(self):
        return self._now

    async def sleep(self, seconds):
        future = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self._now + timedelta(seconds=seconds), self._seq, future))
        await future

    async def run(self, *coroutines):
        tasks = [asyncio.ensure_future(c) for c in coroutines]
        for _ in range(100_000):  # bounded
            for _ in range(20):
                await asyncio.sleep(0)
            if all(t.done() for t in tasks):
                return [t.result() for t in tasks]
            at, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, at)
            future.set_result(None)
        raise AssertionError("did not finish")


async def test_processes_sharing_a_ledger_share_the_budget():
    clock = VirtualClock()
    ledger = InMemoryLedger(20, clock)
    workers = [budget(clock, 20, ledger) for _ in range(3)]
    stamps: list[float] = []

    async def calls(b, n):
        for _ in range(n):
            await b.acquire()
            stamps.append(clock.now().timestamp())

    await clock.run(*(calls(b, 40) for b in workers))
    assert len(stamps) == 120
    assert busiest_second(stamps) == 20  # together, not 3 x 20
    assert max(stamps) - min(stamps) == pytest.approx(119 / 20, abs=0.2)


async def test_a_busy_process_reserves_several_slots_per_trip_to_the_ledger_an_idle_one_one(clock):
    trips: list[int] = []
    inner = InMemoryLedger(50, clock)

    async def counting(n):
        trips.append(n)
        return await inner(n)

    b = budget(clock, 50, counting, max_lease=10)
    await b.acquire()
    assert trips == [1]
    await asyncio.gather(*(b.acquire() for _ in range(30)))
    assert sum(trips) >= 31 and max(trips) == 10 and len(trips) < 31


async def test_slots_a_process_fell_behind_on_are_dropped_not_spent_at_once(clock):
    ledger = InMemoryLedger(10, clock)
    b = budget(clock, 10, ledger, max_lease=10)
    await asyncio.gather(*(b.acquire() for _ in range(2)))  # reserves a few slots ahead
    clock.advance(5)  # the process stalled: its reserved slots are long past
    stamps = []
    for _ in range(5):
        await b.acquire()
        stamps.append(clock.now().timestamp())
    assert busiest_second(stamps) <= 10 and stamps[-1] - stamps[0] == pytest.approx(0.4)


async def test_every_call_is_counted_by_method_and_status_class_with_its_wait(clock, fake_stripe):
    import stripe

    from adapters.prometheus import PrometheusMetrics, new_registry

    metrics = PrometheusMetrics(new_registry())
    limited = RateLimited(fake_stripe, budget(clock, 2), metrics, "customers")
    created = await limited.create_async(params={"name": "A"})
    fake_stripe.fail_next("update", 429)
    with pytest.raises(stripe.RateLimitError):
        await limited.update_async(created["id"], params={"name": "B"})
    fake_stripe.fail_next("update", 503)
    with pytest.raises(stripe.StripeError):
        await limited.update_async(created["id"], params={"name": "B"})
    await limited.update_async(created["id"], params={"name": "B"})

    def calls(method, status_class):
        labels = {"system": "stripe", "method": method, "status_class": status_class}
        return metrics.registry.get_sample_value("custsync_external_requests_total", labels) or 0

    assert (calls("customers.create", "2xx"), calls("customers.update", "2xx")) == (1, 1)
    assert (calls("customers.update", "429"), calls("customers.update", "5xx")) == (1, 1)
    waits = metrics.registry.get_sample_value("custsync_rate_limit_wait_seconds_count", {"system": "stripe"})
    waited = metrics.registry.get_sample_value("custsync_rate_limit_wait_seconds_sum", {"system": "stripe"})
    assert waits == 4 and waited == pytest.approx(1.5)  # four calls at 2/s: 0, 0.5, 0.5, 0.5 s for their slots
