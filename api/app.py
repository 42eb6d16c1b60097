"""The Litestar application factory. Connections, scripts and everything the
handlers use are created in the lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Request
from litestar.di import Provide
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin

from api import docs
from api.customers import CustomerController
from api.dead_letters import DeadLetterController
from api.edi import EdiDocumentController, ImportController, InvoiceController, PartnerController
from api.inventory import InventoryController
from api.keys import ApiKeyController
from api.ledger import LedgerController
from api.hot import HotRoutes
from api.middleware import OnhandMiddleware
from api.orders import OrderController
from api.problems import exception_handlers
from api.returns import ReturnController
from api.service import ServiceController
from api.webhooks import ShopifyWebhookController
from api.services import Services, Shared, StoreFactory, onhand_store, services_for
from api.webhook_endpoints import WebhookEndpointController
from onhand.settings import Settings

#: Largest request body, bytes (API.md: 1 MiB; webhooks have their own 2 MiB).
MAX_BODY_BYTES = 1024 * 1024


async def _services(state: State, request: Request) -> Services:
    return await services_for(request)


def create_app(settings: Settings | None = None, *, extra_controllers: list | None = None,
               store_factory: StoreFactory = onhand_store) -> Litestar:
    """Builds the app; ``settings`` default to the environment's (read when the
    app starts, so the factory itself reads nothing). ``store_factory`` builds
    the reservation engine (benchmarks plug in a PostgreSQL row-lock one)."""

    from ui.app import UiMount

    ui = UiMount()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.shared = await Shared.open(settings or Settings.from_env(), store_factory)
        try:
            await ui.start(app, app.state.shared)
            yield
        finally:
            await ui.stop(app)
            await app.state.shared.close()

    controllers = [ServiceController, InventoryController, CustomerController, OrderController,
                   ReturnController, ApiKeyController, ShopifyWebhookController, LedgerController,
                   DeadLetterController, ImportController, EdiDocumentController, InvoiceController,
                   PartnerController, WebhookEndpointController, *ui.route_handlers,
                   *(extra_controllers or [])]
    app = Litestar(
        route_handlers=controllers,
        lifespan=[lifespan],
        dependencies={"services": Provide(_services)},
        middleware=[OnhandMiddleware()],
        exception_handlers=exception_handlers(),
        request_max_body_size=MAX_BODY_BYTES,
        # the staff UI (ui/): its pages, templates, static files and CSRF check
        template_config=ui.template_config,
        csrf_config=ui.csrf,
        openapi_config=OpenAPIConfig(
            title="onhand",
            version="1.0.0",
            description="One inventory pool for DTC (Shopify) and wholesale orders. "
                        "Errors are RFC 9457 problem details (application/problem+json).",
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
        ),
        debug=False,
        # logging is the process's business (onhand's CLI sets it up); Litestar's
        # default would reconfigure the root logger at INFO on every app
        logging_config=None,
    )
    docs.refine(app.openapi_schema)
    # the order path's routes, served in front of the router (api/hot.py)
    app.asgi_handler = HotRoutes(app, app.asgi_handler)
    return app


def create_default_app() -> Litestar:
    """Entry point for ASGI servers (``granian --factory api.app:create_default_app``)."""
    return create_app()
