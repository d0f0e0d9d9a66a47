"""HTTP fixtures: Litestar's test client over ``create_app`` on an in-memory EmbeddedSystem.

Every test gets a fresh system (``tests/conftest.py``), so a client sees an empty catalog and an
empty fake Stripe; ``await system.settle()`` then runs the relay, the worker and webhook delivery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory.clock import FakeClock
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.http.helpers import API_TOKEN, create
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem


@pytest.fixture
async def client(system: EmbeddedSystem) -> AsyncIterator[AsyncTestClient]:
    """The production app: no dev routes, no API token."""
    async with AsyncTestClient(app=create_app(system.container)) as c:
        yield c


@pytest.fixture
async def dev_client(system: EmbeddedSystem) -> AsyncIterator[AsyncTestClient]:
    """The app as ``custsync dev`` serves it: with the fake-Stripe routes under /dev."""
    async with AsyncTestClient(app=create_app(system.container, dev_routes=True)) as c:
        yield c


@pytest.fixture
def secured_system(clock: FakeClock) -> EmbeddedSystem:
    return EmbeddedSystem(Settings(api_token=API_TOKEN, stripe_webhook_secret=WEBHOOK_SECRET), clock=clock)


@pytest.fixture
async def secured_client(secured_system: EmbeddedSystem) -> AsyncIterator[AsyncTestClient]:
    """The app with API_TOKEN set (dev routes mounted too, to check they are guarded as well)."""
    async with AsyncTestClient(app=create_app(secured_system.container, dev_routes=True)) as c:
        yield c


@pytest.fixture
async def synced_customer(client: AsyncTestClient, system: EmbeddedSystem) -> dict:
    """Ada, created through the API and already synced to the fake Stripe."""
    customer = await create(client, name="Ada Lovelace", email="ada@example.com")
    await system.settle()
    return customer
