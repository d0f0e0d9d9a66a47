"""The Litestar application factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, MediaType, Response, Router
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from entrypoints.container import Container
from entrypoints.http.correlation import correlation_middleware
from entrypoints.http.customers import CustomerController
from entrypoints.http.dead_letters import DeadLetterController
from entrypoints.http.deps import Services
from entrypoints.http.dev import FakeSalesforceController, FakeStripeController
from entrypoints.http.methods import correct_allow, get
from entrypoints.http.metrics import metrics_route
from entrypoints.http.openapi import COMPONENTS, document
from entrypoints.http.problems import EXCEPTION_HANDLERS, PROBLEM_JSON, TITLES, problem
from entrypoints.http.ready import ready_route
from entrypoints.http.reconcile import ReconcileController, ResyncController
from entrypoints.http.schemas import Health
from entrypoints.http.status import status
from entrypoints.http.types import AnyRequest
from entrypoints.http.webhooks import webhook

SCHEMA_PATH = "/schema"  # the OpenAPI document: /schema/openapi.json (and .yaml)
VENDOR = Path(__file__).with_name("static") / "vendor"  # scripts/vendor-assets.sh: pinned, with their licences
ASSETS = "/static/vendor"
# The API docs load nothing from another host (a CDN is unreachable on many networks, and a page
# that needs one is blank there): Swagger UI and Redoc are served from ASSETS, no web fonts, no
# remote favicon (Litestar's defaults load all three from CDNs).
NO_FAVICON = "<link rel='icon' href='data:,'>"
# And the browser is told so: a docs page may load from this service only. Redoc's attribution
# logo (an <img> from cdn.redoc.ly that hides itself when it fails) is blocked by this, not fetched.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)
DOC_PLUGINS = (
    SwaggerRenderPlugin(
        path="/swagger",
        favicon=NO_FAVICON,
        js_url=f"{ASSETS}/swagger-ui/swagger-ui-bundle.js",
        css_url=f"{ASSETS}/swagger-ui/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS}/swagger-ui/swagger-ui-standalone-preset.js",
    ),
    RedocRenderPlugin(path="/redoc", favicon=NO_FAVICON, js_url=f"{ASSETS}/redoc/redoc.standalone.js", google_fonts=False),
)
DESCRIPTION = (
    "The customer catalog of custsync, kept in two-way, real-time sync with Stripe and Salesforce: "
    "a change made here, in Stripe or in Salesforce reaches the other two. Every `/api/v1` route but "
    "the signed webhooks needs `Authorization: Bearer <API_TOKEN>`; errors are `application/problem+json`."
)


@get("/health", tags=["operations"], summary="Liveness")
async def health() -> Health:
    return Health(status="healthy")


@get(["/docs", "/redoc"], include_in_schema=False)
async def docs(request: AnyRequest) -> Response[bytes]:
    """The OpenAPI UIs at stable short paths: Swagger UI at /docs, Redoc at /redoc."""
    pages: dict[str, bytes] = request.app.state.docs_pages  # the document is complete before it is served: render once
    html = pages.get(request.url.path)
    if html is None:
        plugin = DOC_PLUGINS[0] if request.url.path == "/docs" else DOC_PLUGINS[1]
        html = pages[request.url.path] = plugin.render(request, request.app.openapi_schema.to_schema())
    return Response(html, media_type=MediaType.HTML, headers={"content-security-policy": DOCS_CSP})


@get("/", include_in_schema=False)
async def root() -> Redirect:
    """A browser pointed at the service lands on its API documentation."""
    return Redirect(path="/docs")


async def schema_routes(response: Response[Any]) -> Response[Any]:
    """The routes Litestar makes under /schema: its docs pages under the same policy as /docs, and
    every error answer problem+json (an unknown path there is an HTML page)."""
    status = response.status_code or 200
    if status < 400:
        if str(response.media_type).startswith("text/html"):
            response.headers["content-security-policy"] = DOCS_CSP
        return response
    if str(response.media_type).startswith(PROBLEM_JSON):
        return response
    return problem(status, TITLES.get(status, "Error"), headers=_kept(response.headers))


def _no_such_asset(_: AnyRequest, __: NotFoundException) -> Response[Any]:
    """Litestar's message names the directory searched: where the service is installed is nobody's business."""
    return problem(404, "Not found")


def _kept(headers: Any) -> dict[str, str]:
    return {k: v for k, v in dict(headers or {}).items() if k.lower() in {"allow", "retry-after", "www-authenticate"}}


def create_app(container: Container, *, dev_routes: bool = False, **litestar_options: Any) -> Litestar:
    """The HTTP app over ``container``; ``dev_routes`` mounts the controls of each stand-in in use
    (the fake Stripe without STRIPE_SECRET_KEY, the fake Salesforce without SALESFORCE_INSTANCE_URL)."""
    settings = container.settings()

    def provide(factory: Any) -> Provide:
        return Provide(factory, sync_to_thread=False)

    services = Services(container)
    dependencies = {
        "uow": provide(lambda: container.uow_factory()()),
        "services": provide(lambda: services),
    }
    handlers: list[Any] = [
        CustomerController,
        ResyncController,
        DeadLetterController,
        ReconcileController,
        webhook,
        health,
        ready_route(container),
        metrics_route(container),
        status,
        docs,
        root,
        create_static_files_router(
            ASSETS,
            directories=[VENDOR],
            include_in_schema=False,
            exception_handlers={NotFoundException: _no_such_asset},
            cache_control=CacheControlHeader(no_cache=True),  # revalidated (ETag): an upgrade's assets show at once
        ),
    ]
    if dev_routes and settings.stripe_backend == "memory" and "stripe" in settings.integration_names:
        dependencies["fake_stripe"] = provide(lambda: container.stripe_customers())
        handlers.append(FakeStripeController)
    if dev_routes and settings.salesforce_backend == "memory" and "salesforce" in settings.integration_names:
        dependencies["fake_salesforce"] = provide(lambda: container.salesforce_org())
        handlers.append(FakeSalesforceController)
    app = Litestar(
        route_handlers=handlers,
        dependencies=dependencies,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[correlation_middleware],
        # Our handlers log what deserves it (a 500's trace, a 503's cause), and entrypoints/logs.py
        # formats every line: Litestar's own logging config would install a second format.
        logging_config=None,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="custsync",
            version="0.1.0",
            description=DESCRIPTION,
            path=SCHEMA_PATH,
            openapi_router=Router(SCHEMA_PATH, route_handlers=[], after_request=schema_routes, include_in_schema=False),
            render_plugins=[*DOC_PLUGINS, JsonRenderPlugin(), YamlRenderPlugin()],
            components=COMPONENTS,
        ),
        **litestar_options,
    )
    app.state.api_token = settings.api_token
    app.state.docs_pages = {}
    correct_allow(app)
    document(app, systems=list(container.webhook_sources()))
    return app


def create_worker_app(container: Container) -> Litestar:
    """The worker's operations listener (METRICS_PORT): liveness, readiness and metrics only."""
    return Litestar(
        route_handlers=[health, ready_route(container), metrics_route(container)],
        logging_config=None,
        openapi_config=None,
    )
