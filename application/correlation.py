"""What the logs say about the work in hand: a correlation id that follows one change from where
it entered (an API request, a webhook) through the outbox and the worker to the external call,
and the fields that name it (event, customer, external id, topic/partition/offset).

Context variables, so that each request and each worker lane has its own; carried across Kafka
in the messages themselves (``CustomerChanged.correlation_id``, ``ExternalChange.correlation_id``).
The entrypoints configure how a log line shows them (``entrypoints.logs``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

_fields: ContextVar[Mapping[str, object]] = ContextVar("custsync_log_fields", default=MappingProxyType({}))


def current_correlation() -> str | None:
    value = _fields.get().get("correlation_id")
    return value if isinstance(value, str) else None


def log_fields() -> Mapping[str, object]:
    return _fields.get()


def new_correlation_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def bound(**fields: object) -> Iterator[None]:
    """The fields (those not None) added to every log line within the block."""
    token = _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)
