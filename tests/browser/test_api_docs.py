"""`/docs` (Swagger UI) and `/redoc` render in a browser with no network: everything they load is
served by the service itself, and every operation of the OpenAPI document is listed."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.conftest import OfflinePage

METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def operations(dev_server: str) -> list[tuple[str, str, str]]:
    """(method, path, summary) of every operation the API documents."""
    document = httpx.get(f"{dev_server}/schema/openapi.json", timeout=10).json()
    found = [
        (method.upper(), path, operation["summary"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]
    assert len(found) >= 15  # the catalog, dead letters, reconcile, resync, webhooks, status, probes
    return found


def test_swagger_ui_lists_every_operation_offline(dev_server, offline_page: OfflinePage, operations):
    page = offline_page.page
    page.goto(f"{dev_server}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)

    listed = page.eval_on_selector_all(
        ".opblock",
        "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent.trim(), "
        "b.querySelector('.opblock-summary-path').getAttribute('data-path')])",
    )
    assert sorted(map(tuple, listed)) == sorted((method, path) for method, path, _ in operations)
    assert page.title() == "custsync"
    assert offline_page.refused == [] and offline_page.errors == [] and offline_page.console == []


def test_swagger_ui_tries_an_operation_out_under_the_pages_policy(dev_server, offline_page: OfflinePage):
    """The docs pages' Content-Security-Policy lets Swagger UI call the API it documents."""
    page = offline_page.page
    page.goto(f"{dev_server}/docs")
    block = page.locator(".opblock-get", has=page.locator('[data-path="/api/v1/customers"]'))
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.get_by_role("button", name="Execute").click()
    status = block.locator(".live-responses-table .response .response-col_status")
    status.wait_for(timeout=20_000)
    assert status.inner_text().strip() == "200"
    assert offline_page.refused == [] and offline_page.console == []


def test_redoc_lists_every_operation_offline(dev_server, offline_page: OfflinePage, operations):
    page = offline_page.page
    page.goto(f"{dev_server}/redoc")
    page.wait_for_selector("[role=menuitem]", timeout=20_000)

    menu = page.text_content(".menu-content") or ""  # collapsed groups included
    missing = [summary for _, _, summary in operations if summary not in menu]
    assert missing == [], f"operations not in Redoc's menu: {missing}"
    assert offline_page.refused == [] and offline_page.errors == []
    # The one thing the page's policy refuses: Redoc's attribution logo, an <img> that hides itself.
    assert [m for m in offline_page.console if "cdn.redoc.ly/redoc/logo-mini.svg" not in m] == []


def test_the_browser_is_really_offline(offline_page: OfflinePage):
    """The check above would pass vacuously if nothing could be refused: a CDN request is."""
    page = offline_page.page
    page.set_content('<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>')
    assert offline_page.refused == ["https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"]
