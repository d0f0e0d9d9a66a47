"""Pages in a real browser: Debian's chromium (scripts/chromium.sh, which `make test` runs), driven
by Playwright through its executable path (Playwright's own browser download needs a CDN).

Every page runs with the network unreachable: chromium resolves no host but 127.0.0.1, and every
request for another host is refused and recorded, so a test can assert that none was made."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.support.processes import CUSTSYNC, wait_until
from tests.support.stripe_server import free_port

CHROMIUM = os.environ.get("CUSTSYNC_CHROMIUM", "/usr/bin/chromium")
OFFLINE = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no DNS but loopback: a CDN is unreachable
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-gpu",
    "--no-sandbox",
]


@pytest.fixture(scope="module")  # not the session: sync Playwright runs an event loop on this thread while it lives,
def browser() -> Iterator[Browser]:  # and pytest-asyncio's tests after these need the thread without one
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no browser at {CHROMIUM}: run scripts/chromium.sh up (make test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=OFFLINE)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class OfflinePage:
    page: Page
    refused: list[str] = field(default_factory=list)  # requests for any host but this machine
    errors: list[str] = field(default_factory=list)  # uncaught errors in the page's scripts
    console: list[str] = field(default_factory=list)  # what the page logged as an error (a CSP refusal among them)


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[OfflinePage]:
    context = browser.new_context()
    page = context.new_page()
    offline = OfflinePage(page)

    def route(route: Route) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "data:", "blob:")):
            route.continue_()
        else:
            offline.refused.append(url)
            route.abort("internetdisconnected")

    page.route("**/*", route)
    page.on("pageerror", lambda error: offline.errors.append(str(error)))
    page.on("console", lambda message: offline.console.append(message.text) if message.type == "error" else None)
    try:
        yield offline
    finally:
        context.close()


@pytest.fixture(scope="module")
def dev_server() -> Iterator[str]:
    """`custsync dev` as a user starts it: the API with its docs, on a free port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "API_TOKEN")}
    proc = subprocess.Popen([CUSTSYNC, "dev", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            assert proc.poll() is None, "custsync dev exited"
            return False

    try:
        wait_until(healthy, timeout=30)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
