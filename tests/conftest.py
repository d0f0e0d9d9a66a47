from __future__ import annotations

import pytest

from adapters.memory.clock import FakeClock
from adapters.memory.database import InMemoryDatabase
from adapters.memory.stripe import InMemoryStripe
from adapters.stripe.integration import StripeIntegration
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db() -> InMemoryDatabase:
    return InMemoryDatabase()


@pytest.fixture
def uow(db: InMemoryDatabase):
    """A fresh unit of work (each use case opens and closes its own)."""
    return db.unit_of_work()


@pytest.fixture
def fake_stripe(clock: FakeClock) -> InMemoryStripe:
    return InMemoryStripe(clock)


@pytest.fixture
def stripe_integration(fake_stripe: InMemoryStripe) -> StripeIntegration:
    return StripeIntegration(fake_stripe, [WEBHOOK_SECRET])


@pytest.fixture
def system(clock: FakeClock) -> EmbeddedSystem:
    return EmbeddedSystem(clock=clock)
