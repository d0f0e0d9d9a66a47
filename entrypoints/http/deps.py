"""Handler parameter types for the container-provided dependencies.

Ports are Protocols, which Litestar cannot validate at runtime; the container already built them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from litestar.di import Dependency
from litestar.params import SkipValidationMarker

from adapters.memory.stripe import InMemoryStripe
from application.ports import Clock, Integrations, MessagePublisher, UnitOfWork, UnitOfWorkFactory

UowDep = Annotated[UnitOfWork, Dependency(), SkipValidationMarker()]
ClockDep = Annotated[Clock, Dependency(), SkipValidationMarker()]
SystemsDep = Annotated[Sequence[str], Dependency(), SkipValidationMarker()]
IntegrationsDep = Annotated[Integrations, Dependency(), SkipValidationMarker()]
PublisherDep = Annotated[MessagePublisher, Dependency(), SkipValidationMarker()]
FakeStripeDep = Annotated[InMemoryStripe, Dependency(), SkipValidationMarker()]
UowFactoryDep = Annotated[UnitOfWorkFactory, Dependency(), SkipValidationMarker()]
