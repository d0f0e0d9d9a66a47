"""Wake the outbox relay when events are committed: LISTEN on the channel the outbox trigger NOTIFYs."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from sqlalchemy.engine import make_url

from adapters.postgres.tables import OUTBOX_CHANNEL

log = logging.getLogger(__name__)


def asyncpg_dsn(database_url: str) -> str:
    """``postgresql+asyncpg://...`` (SQLAlchemy's spelling) as a DSN asyncpg itself accepts."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresOutboxWakeup:
    """An OutboxWakeup on its own asyncpg connection (LISTEN needs a session that stays open,
    which a pooled connection is not). Meant for one waiter, the relay.

    No wakeup is lost:
    - a notification that arrives while the relay is busy makes the next ``wait`` return at once;
    - whenever ``wait`` (re)connects it returns at once too, since whatever was committed while
      nobody listened sent its NOTIFY into the void;
    - when the connection drops, a pending ``wait`` returns, and the next one reconnects.
    While the database is unreachable ``wait`` sleeps its timeout: the relay degrades to polling.
    """

    def __init__(
        self,
        database_url: str,
        channel: str = OUTBOX_CHANNEL,
        *,
        application_name: str = "custsync-outbox-wakeup",
        connect_timeout: float = 10.0,
    ) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._channel = channel
        self.application_name = application_name
        self._connect_timeout = connect_timeout
        self._woken = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._closed = False

    async def wait(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if not self._closed and not self._listening():
            await self._listen(deadline - loop.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), max(0.0, deadline - loop.time()))
        self._woken.clear()

    async def close(self) -> None:
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.remove_listener(self._channel, self._on_notify)
            finally:
                await connection.close(timeout=5)

    def _listening(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    async def _listen(self, budget: float) -> None:
        try:
            connection = await asyncpg.connect(
                self._dsn,
                timeout=max(0.1, min(budget, self._connect_timeout)),
                server_settings={"application_name": self.application_name},
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("cannot LISTEN for outbox events (%r); polling until the database is back", exc)
            return
        try:
            await connection.add_listener(self._channel, self._on_notify)
        except BaseException as exc:
            connection.terminate()
            if isinstance(exc, OSError | TimeoutError | asyncpg.PostgresError | asyncpg.InterfaceError):
                log.warning("cannot LISTEN for outbox events (%r); polling until the database is back", exc)
                return
            raise
        connection.add_termination_listener(self._on_terminated)
        self._connection = connection
        self._woken.set()

    def _on_notify(self, connection: object, pid: int, channel: str, payload: object) -> None:
        self._woken.set()

    def _on_terminated(self, connection: object) -> None:
        if not self._closed:
            log.warning("lost the outbox LISTEN connection; reconnecting on the next wait")
            self._woken.set()
