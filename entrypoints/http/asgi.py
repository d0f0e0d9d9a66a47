"""The API as an ASGI application factory, for uvicorn's worker processes (``custsync api
--workers N``): each process builds its own container from the environment, and the app's
lifespan does what ``run_process`` does for a single process -- the backends started (waited for,
unless ``--no-wait``) and stopped, the account binding tried once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from types import FrameType

from litestar import Litestar

from application.sync.waiting import Stopped
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.lifecycle import bind_accounts, running
from entrypoints.logs import configure
from entrypoints.settings import load_settings

# Set by the parent for its worker processes: "0" is --no-wait (an unreachable backend stops the
# worker at once, and then the whole API).
WAIT_ENV = "CUSTSYNC_API_WAIT"
log = logging.getLogger("custsync")


def create() -> Litestar:
    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    container = build_container(settings)
    wait = os.environ.get(WAIT_ENV, "1") != "0"

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                with _stopped_by_signals() as stopping:
                    await stack.enter_async_context(running(container, wait=wait, stopping=stopping))
                    await bind_accounts(container, wait=False, required=False)
            except Stopped:
                # SIGTERM while a backend was waited for: uvicorn has been told to exit too, and
                # does, cleanly, once this startup returns.
                log.info("API process %s stopped before the backends could be reached", os.getpid())
            except Exception as exc:
                log.error("cannot start the API worker process %s: %s", os.getpid(), exc)
                raise
            yield

    return create_app(container, lifespan=[lifespan])


@contextmanager
def _stopped_by_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGTERM/SIGINT, for the startup's waits. uvicorn's own handlers (installed
    before the lifespan starts) only flag the exit, which nothing checks until startup is over:
    without this a process waiting for PostgreSQL would ignore every SIGTERM. Chained, so uvicorn
    still sees the signal, and restored afterwards."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(stopping.set)
        chained = previous[signal.Signals(sig)]
        if callable(chained):
            chained(sig, frame)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stopping
    finally:
        for sig, chained in previous.items():
            signal.signal(sig, chained)
