"""The API as an ASGI application factory, for uvicorn's worker processes (``custsync api
--workers N``): each process builds its own container from the environment, and the app's
lifespan does what ``run_process`` does for a single process -- the backends started (waited for,
unless ``--no-wait``) and stopped, the account binding tried once."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

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
    configure(settings.log_level)
    container = build_container(settings)
    wait = os.environ.get(WAIT_ENV, "1") != "0"

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        try:
            async with running(container, wait=wait):
                await bind_accounts(container, wait=False, required=False)
                yield
        except Exception as exc:
            log.error("cannot start the API worker process %s: %s", os.getpid(), exc)
            raise

    return create_app(container, lifespan=[lifespan])
