"""The Stripe request budget, measured on a fake clock."""

import pytest

from adapters.stripe.limiter import RateLimited, TokenBucket


async def paced_calls(clock, limited, n):
    stamps = []
    for i in range(n):
        await limited.create_async(params={"name": f"C{i}"})
        stamps.append(clock.now().timestamp())
    return stamps


def busiest_second(stamps):
    return max(sum(1 for s in stamps[i:] if s < t + 1.0 - 1e-9) for i, t in enumerate(stamps))


@pytest.mark.parametrize("rate", [25, 100, 3])
async def test_no_one_second_window_holds_more_calls_than_the_budget(clock, fake_stripe, rate):
    limited = RateLimited(fake_stripe, TokenBucket(rate=rate, clock=clock))
    stamps = await paced_calls(clock, limited, 4 * rate)
    assert busiest_second(stamps) == rate
    assert len(fake_stripe.customers) == 4 * rate


async def test_a_backlog_drains_at_the_budget(clock, fake_stripe):
    limited = RateLimited(fake_stripe, TokenBucket(rate=25, clock=clock))
    stamps = await paced_calls(clock, limited, 100)
    assert stamps[-1] - stamps[0] == pytest.approx(99 / 25)


async def test_every_kind_of_call_is_paced(clock, fake_stripe):
    limited = RateLimited(fake_stripe, TokenBucket(rate=10, clock=clock))
    created = await limited.create_async(params={"name": "A"})
    await limited.update_async(created["id"], params={"name": "B"})
    await limited.retrieve_async(created["id"])
    await limited.list_async(params={"limit": 10})
    await limited.delete_async(created["id"])
    assert clock.slept == pytest.approx([0.1] * 4)


async def test_an_idle_bucket_refills_only_up_to_its_burst(clock):
    bucket = TokenBucket(rate=5, clock=clock, burst=5)
    clock.advance(3600)
    start = clock.now()
    for _ in range(10):
        await bucket.acquire()
    assert (clock.now() - start).total_seconds() == pytest.approx(1.0)  # 5 at once, then 5 more at 5/s
