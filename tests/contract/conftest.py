"""One contract suite, run against every implementation of the storage ports, so that the
in-memory fakes cannot drift from the real database."""

from __future__ import annotations

import pytest

from adapters.memory.database import InMemoryDatabase


@pytest.fixture(params=["memory"])
def uow_factory(request):
    if request.param == "memory":
        return InMemoryDatabase().unit_of_work
    raise AssertionError(request.param)  # pragma: no cover
