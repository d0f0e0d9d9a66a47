"""Which database errors are an outage to wait out, and which are ours to dead-letter."""

import asyncpg
import pytest
from sqlalchemy import exc as sa

from adapters.postgres.errors import is_unavailable


class ServerError(Exception):
    def __init__(self, sqlstate):
        super().__init__(f"server said {sqlstate}")
        self.sqlstate = sqlstate


def wrapped(cause: BaseException) -> sa.DBAPIError:
    """As SQLAlchemy raises it: a DBAPIError whose cause is the driver's error."""
    try:
        try:
            raise cause
        except BaseException as inner:
            raise sa.DBAPIError("statement", {}, inner) from inner
    except sa.DBAPIError as outer:
        return outer


@pytest.mark.parametrize("sqlstate", ["08006", "57P01", "57P03", "53300", "53100", "25006", "40001", "40P01", "55P03", "57014"])
def test_outages_failovers_and_contention_are_waited_out(sqlstate):
    assert is_unavailable(wrapped(ServerError(sqlstate)))


@pytest.mark.parametrize("sqlstate", ["23505", "22021", "42P01", "22001"])
def test_what_is_wrong_with_the_statement_or_data_is_not(sqlstate):
    assert not is_unavailable(wrapped(ServerError(sqlstate)))


def test_a_closed_connection_is_an_outage_but_another_interface_error_is_a_bug():
    assert is_unavailable(wrapped(asyncpg.exceptions.InterfaceError("connection is closed")))
    assert is_unavailable(
        wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"))
    )
    assert not is_unavailable(
        wrapped(asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"))
    )


def test_connection_refused_and_an_exhausted_pool_are_outages():
    assert is_unavailable(ConnectionRefusedError(111, "Connect call failed"))
    assert is_unavailable(sa.TimeoutError("QueuePool limit of size 1 overflow 1 reached"))
