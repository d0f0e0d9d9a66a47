"""Handler parameter types for the container-provided dependencies.

Ports are Protocols, which Litestar cannot validate at runtime; the container already built them.

A handler that needs more than a unit of work takes ``services`` (one dependency), not one
dependency per port: Litestar resolves two or more dependencies of a handler in an anyio task
group, a task per dependency per request (py-spy: about 6% of a create's CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from litestar.di import Dependency
from litestar.params import SkipValidationMarker

from adapters.memory.salesforce import InMemorySalesforce
from adapters.memory.stripe import InMemoryStripe
from adapters.prometheus import PrometheusMetrics
from application.ports import Clock, ConsumerLag, Integrations, MessagePublisher, UnitOfWork, UnitOfWorkFactory, WebhookSources
from entrypoints.container import Container


class Services:
    """The container's ports, read when used (so a provider overridden after the app was built,
    as tests do, is the one used)."""

    __slots__ = ("_container",)

    def __init__(self, container: Container) -> None:
        self._container = container

    def uow(self) -> UnitOfWork:
        return self._container.uow_factory()()

    @property
    def uow_factory(self) -> UnitOfWorkFactory:
        return self._container.uow_factory()

    @property
    def clock(self) -> Clock:
        return self._container.clock()

    @property
    def integrations(self) -> Integrations:
        return self._container.integrations()

    @property
    def webhook_sources(self) -> WebhookSources:
        return self._container.webhook_sources()

    @property
    def systems(self) -> Sequence[str]:
        return list(self._container.integrations())

    @property
    def publisher(self) -> MessagePublisher:
        return self._container.publisher()

    @property
    def consumer_lag(self) -> ConsumerLag:
        return self._container.consumer_lag()

    @property
    def metrics(self) -> PrometheusMetrics:
        return self._container.metrics()


UowDep = Annotated[UnitOfWork, Dependency(), SkipValidationMarker()]
ServicesDep = Annotated[Services, Dependency(), SkipValidationMarker()]
FakeStripeDep = Annotated[InMemoryStripe, Dependency(), SkipValidationMarker()]
FakeSalesforceDep = Annotated[InMemorySalesforce, Dependency(), SkipValidationMarker()]
