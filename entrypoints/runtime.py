"""Long-running processes: the HTTP server, the worker (relay + consumer + catch-up), and their shutdown.

SIGTERM or SIGINT sets one ``stopping`` event; every loop finishes the delivery in hand, commits
what is done and returns, so nothing accepted is lost and nothing is left half-applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import uvicorn
from litestar import Litestar

from application.errors import BackendUnavailable
from application.status import read_status
from application.sync.catchup import run_catch_up
from application.sync.reconcile import run_reconciler
from application.sync.relay import run_relay
from application.sync.retention import run_retention
from application.sync.waiting import Stopped, sleep_unless_stopped
from entrypoints.container import Container, sync_consumers
from entrypoints.http.server import uvicorn_options
from entrypoints.lifecycle import bind_accounts, running, subscribed

log = logging.getLogger("custsync")
Task = Callable[[asyncio.Event], Awaitable[None]]


async def run_until_signalled(*tasks: Task) -> None:
    """Run ``tasks`` until SIGTERM/SIGINT (or until one of them ends), then stop them all."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stop, stopping, sig)
    try:
        running = [asyncio.create_task(_stop_all_when_done(task, stopping)) for task in tasks]
        await asyncio.gather(*running)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped cleanly")


def _stop(stopping: asyncio.Event, sig: signal.Signals) -> None:
    log.info("received %s: finishing the work in hand, then stopping", sig.name)
    stopping.set()


async def _stop_all_when_done(task: Task, stopping: asyncio.Event) -> None:
    try:
        await task(stopping)
    finally:
        stopping.set()


async def run_process(container: Container, *tasks: Task, bind: str | None = None, wait: bool = True) -> None:
    """Start the backends, run ``tasks`` until a signal, stop the backends. ``bind``: a process
    that syncs first checks the external accounts it is bound to -- ``"wait"`` until it can (the
    worker), or ``"try"`` once (the API). ``wait`` off (``--no-wait``): an unreachable backend
    stops the process at once instead of being waited for."""
    async with running(container, wait=wait):
        if bind is not None:
            await bind_accounts(container, wait=wait and bind == "wait", required=bind == "wait")
        await run_until_signalled(*tasks)


def relay_task(container: Container) -> Task:
    async def relay(stopping: asyncio.Event) -> None:
        log.info("outbox relay running")
        await run_relay(container.uow_factory(), container.publisher(), container.clock(), container.outbox_wakeup(), stopping)

    return relay


def consumer_task(container: Container, *, wait: bool = True) -> Task:
    """The worker's consumer groups (application.sync.groups), each its own subscription."""

    async def consume(stopping: asyncio.Event) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                sources = {}
                for group in container.sync_groups():
                    sources[group.name] = await stack.enter_async_context(
                        subscribed(container, group, wait=wait, stopping=stopping)
                    )
                    log.info("worker consuming %s as group %s (for %s)", ", ".join(group.topics), group.group_id, group.name)
                await sync_consumers(container, sources).run(stopping)
        except Stopped:
            log.info("stopped before the broker could be reached")

    return consume


def reconcile_task(container: Container) -> Task:
    """Runs the reconcile runs asked for (API, schedule); see application.sync.reconcile."""

    async def reconcile(stopping: asyncio.Event) -> None:
        settings = container.settings()
        await run_reconciler(
            container.integrations(),
            container.sync_contexts(),
            container.clock(),
            runner_name("worker"),
            stopping,
            interval=settings.reconcile_interval,
            metrics=container.metrics(),
        )

    return reconcile


def runner_name(kind: str) -> str:
    """Who runs a reconcile: ``<kind>:<host>:<pid>`` (``presumed_dead`` reads it back)."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


def presumed_dead(owner: str) -> bool:
    """A runner on this host whose process is gone (killed, crashed): its run can be taken over now."""
    _, _, rest = owner.partition(":")
    host, _, pid = rest.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def catchup_task(container: Container) -> Task:
    settings = container.settings()
    # Who holds a catch-up lease: this process, told apart from every other worker (and restart).
    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def catch_up(stopping: asyncio.Event) -> None:
        integrations = container.integrations()
        log.info("catch-up polling %s every %gs", ", ".join(integrations), settings.catchup_interval)
        await run_catch_up(
            integrations,
            container.uow_factory(),
            container.publisher(),
            container.clock(),
            stopping,
            owner=owner,
            interval=settings.catchup_interval,
            overlap=settings.catchup_overlap,
            max_delay=settings.worker_retry_max_delay,
            metrics=container.metrics(),
        )

    return catch_up


def retention_task(container: Container) -> Task:
    """Every hour, prune what sync no longer needs and scrub settled deletions (application.sync.retention)."""
    settings = container.settings()

    async def retain(stopping: asyncio.Event) -> None:
        log.info("retention: keeping %d days, a pass every hour", settings.retention_days)
        await run_retention(
            container.uow_factory(),
            container.clock(),
            stopping,
            days=settings.retention_days,
            max_delay=settings.worker_retry_max_delay,
            on_pass=container.metrics().retained,
        )

    return retain


def worker_tasks(container: Container, *, wait: bool = True) -> list[Task]:
    """The worker process: the outbox relay, the sync consumer, the reconcile runner, unless
    CATCHUP_INTERVAL=0 catch-up, unless RETENTION_DAYS=0 retention, and with METRICS_PORT its
    operations listener (/health, /ready, /metrics)."""
    settings = container.settings()
    tasks = [relay_task(container), consumer_task(container, wait=wait), reconcile_task(container)]
    if settings.catchup_interval > 0:
        tasks.append(catchup_task(container))
    if settings.retention_days > 0:
        tasks.append(retention_task(container))
    if settings.metrics_port:
        from entrypoints.http.app import create_worker_app

        tasks.append(sampler_task(container))
        tasks.append(http_task(create_worker_app(container), settings.metrics_host, settings.metrics_port, choose="METRICS_PORT"))
    return tasks


def sampler_task(container: Container) -> Task:
    """Every METRICS_INTERVAL, the status (backlog, lag, drift, dead letters) into the gauges. One
    worker's figures are every worker's (they read the same database and group), so a dashboard
    takes ``max`` across workers, not the sum."""

    async def sample(stopping: asyncio.Event) -> None:
        clock, metrics, interval = container.clock(), container.metrics(), container.settings().metrics_interval
        failures = 0
        while not stopping.is_set():
            try:
                report = await read_status(container.uow_factory(), container.integrations(), container.consumer_lag(), clock)
            except BackendUnavailable as exc:
                failures += 1
                if failures == 1:  # the gauges stand still; custsync_status_sampled_timestamp_seconds shows since when
                    log.warning("cannot sample the status for metrics: %s", exc)
            except Exception:
                failures += 1
                if failures == 1:  # once, with its trace; the gauges stand still meanwhile
                    log.exception("sampling the status for metrics failed")
            else:
                if failures:
                    log.info("status sampled again after %d failed attempt(s)", failures)
                failures = 0
                metrics.observe_status(report)
            await sleep_unless_stopped(clock, interval, stopping)

    return sample


def http_task(app: Litestar, host: str, port: int, *, choose: str = "--port") -> Task:
    """Serve ``app`` until stopping; a port it cannot bind stops the process with one line saying
    how to ``choose`` another."""

    async def serve(stopping: asyncio.Event) -> None:
        server = _Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, **uvicorn_options()))
        serving = asyncio.create_task(_serve(server))
        stopped = asyncio.create_task(stopping.wait())
        await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        stopped.cancel()
        await serving
        if not server.started:
            raise CannotServe(
                f"cannot serve HTTP on {host}:{port}: the port is taken, or the address is not this machine's "
                f"(the line above says which; another port: {choose})"
            )

    return serve


class CannotServe(RuntimeError):
    """The HTTP server could not start (its port taken, say): the process stops with one line."""


async def _serve(server: uvicorn.Server) -> None:
    with contextlib.suppress(SystemExit):  # how uvicorn gives up when it cannot bind: the caller says it in one line
        await server.serve()


def serve_api_processes(host: str, port: int, workers: int, *, wait: bool = True) -> bool:
    """``custsync api --workers N``: uvicorn's supervisor binds the port once and runs ``workers``
    processes on it (``entrypoints.http.asgi``), replaces one that dies, and passes SIGTERM/SIGINT
    on (each finishes its requests in flight). False: a process failed to start (the log says why)."""
    from entrypoints.http.asgi import WAIT_ENV

    os.environ[WAIT_ENV] = "1" if wait else "0"  # the worker processes inherit it
    with _shared_metrics_directory():
        return _supervise(host, port, workers)


def _supervise(host: str, port: int, workers: int) -> bool:
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "entrypoints.http.asgi:create",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        **uvicorn_options(),
    )
    supervisor = Multiprocess(config, sockets=[_listening_socket(host, port)])
    supervisor.run()
    return not any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)


@contextlib.contextmanager
def _shared_metrics_directory() -> Iterator[None]:
    """Where the API's processes keep their figures for one another's ``/metrics``
    (prometheus-client's multiprocess mode): PROMETHEUS_MULTIPROC_DIR if set (emptied first, as
    its documentation asks between runs), else a directory of our own, removed at the end. Set
    before the processes start: prometheus-client reads it when it is imported."""
    from adapters.prometheus import MULTIPROCESS_ENV

    given = os.environ.get(MULTIPROCESS_ENV)
    directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="custsync-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_ENV] = str(directory)
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(directory, ignore_errors=True)
            del os.environ[MULTIPROCESS_ENV]


def _listening_socket(host: str, port: int) -> socket.socket:
    """The port the API's processes share. Not ``uvicorn.Config.bind_socket``: its socket has no
    protocol number (0), which the worker processes inherit, and asyncio sets TCP_NODELAY on an
    accepted socket only if it says IPPROTO_TCP -- without it Nagle's algorithm and delayed ACKs
    halved the throughput of every process (bench/api). TCP_NODELAY on the listening socket is
    inherited by every accepted one as well."""
    # The first address the host resolves to, as getaddrinfo orders them (the single process binds
    # every one; one is enough for the loopback and wildcard hosts a deployment uses).
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # "::" is IPv6 only, as asyncio binds it
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    log.info("serving HTTP on %s:%d", host, port)
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process-wide ``stopping`` event rules."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
