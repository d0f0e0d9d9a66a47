"""Handler parameter types for the container-provided dependencies.

Ports are Protocols, which Litestar cannot validate at runtime; the container already built them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from litestar.params import Dependency

from adapters.memory.stripe import InMemoryStripe
from application.ports import Clock, Integrations, MessagePublisher, UnitOfWork

UowDep = Annotated[UnitOfWork, Dependency(skip_validation=True)]
ClockDep = Annotated[Clock, Dependency(skip_validation=True)]
SystemsDep = Annotated[Sequence[str], Dependency(skip_validation=True)]
IntegrationsDep = Annotated[Integrations, Dependency(skip_validation=True)]
PublisherDep = Annotated[MessagePublisher, Dependency(skip_validation=True)]
FakeStripeDep = Annotated[InMemoryStripe, Dependency(skip_validation=True)]
