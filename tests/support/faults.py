"""Fault injection for the sync tests: a Stripe that fails some calls, a worker that dies before
committing, and a webhook wire that duplicates, delays and reorders deliveries."""

from __future__ import annotations

import random
from typing import Any

import stripe

from adapters.memory.stripe import InMemoryStripe
from entrypoints.dev import deliver_stripe_event


class WorkerCrashed(BaseException):
    """The worker died after doing its work and before committing its offsets. A BaseException,
    like the process's death it stands for: no ``except Exception`` of the worker can survive it."""


class FlakyStripe:
    """InMemoryStripe behind an unreliable network: a call may fail before reaching Stripe
    (429 or 500), or reach it and lose the answer (a timeout after the write). No call fails right
    after a failure, so every retried attempt (at most two calls) gets through and nothing is
    dead-lettered: these tests are about convergence, the DLQ has tests of its own."""

    def __init__(self, inner: InMemoryStripe, rng: random.Random, rate: float = 0.2) -> None:
        self.inner, self.rng, self.rate = inner, rng, rate
        self.recent: list[bool] = [False, False]  # did each of the last two calls fail?
        self.faults = 0
        # Run while a write is in flight (after it landed, before its answer): what other workers
        # and people do meanwhile -- the races a real deployment has between read and store.
        self.meanwhile: Any = None

    def _fault(self) -> bool:
        failed = not any(self.recent) and self.rng.random() < self.rate
        self.recent = [self.recent[-1], failed]
        self.faults += failed
        return failed

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._fault():
            if self.rng.random() < 0.5:
                raise stripe.RateLimitError("Too many requests", http_status=429)
            raise stripe.APIError("An unknown error occurred", http_status=500)
        result = await getattr(self.inner, method)(*args, **kwargs)
        if method in ("create_async", "update_async") and self.meanwhile is not None:
            await self.meanwhile()
        if method in ("create_async", "update_async") and self._fault():
            raise stripe.APIConnectionError("timed out reading the response")  # the write did happen
        return result

    async def create_async(self, params: Any = None, options: Any = None) -> Any:
        return await self._call("create_async", params=params, options=options)

    async def update_async(self, customer: str, params: Any = None, options: Any = None) -> Any:
        return await self._call("update_async", customer, params=params, options=options)

    async def delete_async(self, customer: str, params: Any = None, options: Any = None) -> Any:
        return await self._call("delete_async", customer, params=params, options=options)

    async def retrieve_async(self, customer: str, params: Any = None, options: Any = None) -> Any:
        return await self._call("retrieve_async", customer, params=params, options=options)

    async def list_async(self, params: Any = None, options: Any = None) -> Any:
        return await self._call("list_async", params=params, options=options)

    async def retrieve_current_async(self, params: Any = None, options: Any = None) -> Any:
        return await self.inner.retrieve_current_async(params=params, options=options)

    @property
    def event_api(self) -> Any:
        return self.inner.event_api


class CrashBeforeCommit:
    """A message source whose commit never happens: the process died first."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def fetch(self, max_messages: int, timeout: float) -> list:
        return await self.inner.fetch(max_messages, timeout)

    async def commit(self, deliveries: Any) -> None:
        raise WorkerCrashed

    def __getattr__(self, name: str) -> Any:  # assignment, pause, resume: as the real source
        return getattr(self.inner, name)


class WebhookWire:
    """Stripe's delivery of its events: at least once, in any order, sometimes twice."""

    def __init__(self, system: Any, secret: str) -> None:
        self.system, self.secret = system, secret
        self.pending: list[dict] = []
        self.taken = 0
        self.deliveries = 0

    def collect(self) -> None:
        events = self.system.stripe.events
        self.pending += events[self.taken :]
        self.taken = len(events)

    async def deliver(self, index: int, keep: bool = False) -> None:
        """Deliver pending event ``index``; ``keep`` leaves it pending, to be delivered again."""
        self.collect()
        if not self.pending:
            return
        event = self.pending[index % len(self.pending)]
        if not keep:
            self.pending.remove(event)
        await deliver_stripe_event(self.system.container, self.system.stripe, event, self.secret)
        self.deliveries += 1

    async def drain(self, rng: random.Random) -> int:
        self.collect()
        delivered = 0
        while self.pending:
            await self.deliver(rng.randrange(len(self.pending)))
            delivered += 1
            self.collect()
        return delivered
