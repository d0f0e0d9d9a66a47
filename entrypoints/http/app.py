"""The Litestar application factory."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request
from litestar.response import Redirect
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin

from entrypoints.container import Container
from entrypoints.http.correlation import correlation_middleware
from entrypoints.http.customers import CustomerController
from entrypoints.http.dead_letters import DeadLetterController
from entrypoints.http.deps import Services
from entrypoints.http.dev import FakeSalesforceController, FakeStripeController
from entrypoints.http.methods import correct_allow, get
from entrypoints.http.metrics import metrics_route
from entrypoints.http.openapi import COMPONENTS, document
from entrypoints.http.problems import EXCEPTION_HANDLERS
from entrypoints.http.ready import ready_route
from entrypoints.http.reconcile import ReconcileController, ResyncController
from entrypoints.http.schemas import Health
from entrypoints.http.status import status
from entrypoints.http.webhooks import webhook

SCHEMA_PATH = "/schema"  # the OpenAPI document: /schema/openapi.json (and .yaml)


@get("/health", tags=["operations"], summary="Liveness")
async def health() -> Health:
    return Health(status="healthy")


@get(["/docs", "/redoc"], include_in_schema=False)
async def docs(request: Request) -> Redirect:
    """Stable short paths for the OpenAPI UIs served under /schema."""
    return Redirect(path=f"{SCHEMA_PATH}{request.url.path}")


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
        CustomerController, ResyncController, DeadLetterController, ReconcileController, webhook, health, ready_route(container),
        metrics_route(container), status, docs,
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
        # Our handlers log what deserves it (a 500's trace, a 503's cause); Litestar's own exception
        # logging would add a trace for every 4xx under debug.
        logging_config=LoggingConfig(log_exceptions="never"),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="custsync",
            version="0.1.0",
            description="A customer catalog kept in two-way sync with Stripe.",
            path=SCHEMA_PATH,
            render_plugins=[SwaggerRenderPlugin(path="/docs"), RedocRenderPlugin(path="/redoc")],
            components=COMPONENTS,
        ),
        **litestar_options,
    )
    app.state.api_token = settings.api_token
    correct_allow(app)
    document(app, systems=list(container.integrations()))
    return app


def create_worker_app(container: Container) -> Litestar:
    """The worker's operations listener (METRICS_PORT): liveness, readiness and metrics only."""
    return Litestar(
        route_handlers=[health, ready_route(container), metrics_route(container)], logging_config=LoggingConfig(log_exceptions="never"),
        openapi_config=None,
    )
