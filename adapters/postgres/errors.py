"""Which database errors mean "unavailable now" (wait and retry) rather than "this statement is wrong".

The drivers' errors arrive wrapped (SQLAlchemy around asyncpg, sometimes around OSError), so the
whole cause chain is read. Unavailable means: the server cannot be reached, refused or dropped the
connection (SQLSTATE class 08), is shutting down or starting up (57P01-57P03), lacks resources
(class 53: connection slots, disk, memory), is a read-only standby mid-failover (25006), or the
transaction met a serialization failure, deadlock, lock or statement timeout (40001, 40P01,
55P03, 57014) -- or our own pool had no connection free within ``pool_timeout``.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
from sqlalchemy import exc as sa

from application.errors import StorageUnavailable

# Shutting down or starting up; a read-only primary (a failover in progress); a serialization
# failure or deadlock (the same transaction may pass next time); a lock or statement timeout.
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "25006", "40001", "40P01", "55P03", "57014", "58030"})
UNAVAILABLE_CLASSES = ("08", "53")  # connection exceptions; insufficient resources (connections, disk, memory)


def chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_unavailable(error: BaseException) -> bool:
    for e in chain(error):
        if isinstance(e, StorageUnavailable | sa.TimeoutError | OSError | TimeoutError):
            return True
        if isinstance(e, sa.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, asyncpg.exceptions.ConnectionDoesNotExistError):
            return True
        if isinstance(e, asyncpg.exceptions.InterfaceError) and "connection" in str(e) and "closed" in str(e):
            return True  # not every InterfaceError: "another operation is in progress" is a bug of ours
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str) and (state.startswith(UNAVAILABLE_CLASSES) or state in UNAVAILABLE_SQLSTATES):
            return True
    return False


def unavailable(error: BaseException) -> StorageUnavailable:
    """The error to raise instead (``raise unavailable(exc) from exc``): one line, no driver details."""
    if isinstance(error, StorageUnavailable):
        return error
    for e in chain(error):
        if isinstance(e, sa.TimeoutError):
            return StorageUnavailable("the database connection pool is exhausted", retry_after=1.0)
    root = list(chain(error))[-1]
    return StorageUnavailable(f"the database is unavailable ({type(root).__name__}: {str(root).strip()[:200]})")


class StorageRefused(RuntimeError):
    """The database answered but will not let us in: a wrong password, an unknown role or database.
    Not an outage (waiting changes nothing): the process stops with this one line."""


def is_refused(error: BaseException) -> bool:
    return any(
        isinstance(e, asyncpg.exceptions.InvalidAuthorizationSpecificationError | asyncpg.exceptions.InvalidCatalogNameError)
        for e in chain(error)
    )


def refused(error: BaseException, where: str) -> StorageRefused:
    root = list(chain(error))[-1]
    return StorageRefused(f"the database at {where} refuses custsync: {str(root).strip()[:200]} (check DATABASE_URL)")
