"""Which database errors mean "unavailable now" (wait and retry) rather than "this statement is wrong".

The drivers' errors arrive wrapped (SQLAlchemy around asyncpg, sometimes around OSError), so the
whole cause chain is read. Unavailable means: the server cannot be reached, refused or dropped the
connection (SQLSTATE class 08), is shutting down or starting up (57P01-57P03), has no connection
slot left (53300), or our own pool had no connection free within ``pool_timeout``.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
from sqlalchemy import exc as sa

from application.errors import StorageUnavailable

UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "53400"})


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_unavailable(error: BaseException) -> bool:
    for e in _chain(error):
        if isinstance(e, StorageUnavailable | sa.TimeoutError | OSError | TimeoutError):
            return True
        if isinstance(e, sa.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, asyncpg.exceptions.ConnectionDoesNotExistError | asyncpg.exceptions.InterfaceError):
            return True
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str) and (state.startswith("08") or state in UNAVAILABLE_SQLSTATES):
            return True
    return False


def unavailable(error: BaseException) -> StorageUnavailable:
    """The error to raise instead (``raise unavailable(exc) from exc``): one line, no driver details."""
    if isinstance(error, StorageUnavailable):
        return error
    for e in _chain(error):
        if isinstance(e, sa.TimeoutError):
            return StorageUnavailable("the database connection pool is exhausted", retry_after=1.0)
    root = list(_chain(error))[-1]
    return StorageUnavailable(f"the database is unavailable ({type(root).__name__}: {str(root).strip()[:200]})")
