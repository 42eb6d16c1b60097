"""Mounts the staff UI in the Litestar app (api/app.py calls :class:`UiMount`):
its routes under /ui, its templates and static files (package data), the
CSRF check on every UI form, and its start-up (the first admin user, the live
stream's watcher)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from litestar import Litestar, Router
from litestar.config.csrf import CSRFConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.services import Shared
from engine.errors import NotReady
from ui import admin, customers, entry, exceptions, imports, inventory, ledger, login, orders, stock
from ui.base import (AdminOnly, LoginRequired, UiState, admin_only_handler, login_required_handler,
                     not_ready_handler, now_ms, session_guard)
from ui.users import ensure_first_admin

log = logging.getLogger("onhand.ui")

HERE = Path(__file__).parent
#: CSRF applies to the UI only: API routes authenticate with a bearer key,
#: which a browser never sends on its own.
NOT_UI = r"^/(?!ui(/|$))."


class UiMount:
    def __init__(self) -> None:
        # the secret is set at start (settings are read then, not here)
        self.csrf = CSRFConfig(secret=secrets.token_hex(32), cookie_path="/ui", cookie_httponly=False,
                               exclude=[NOT_UI, r"^/ui/static/"], header_name="x-csrftoken")
        self.template_config = TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)

    @property
    def route_handlers(self) -> list:
        pages = Router(
            path="/", guards=[session_guard], opt={"session_auth": True},
            route_handlers=[login.LoginController, entry.EntryController, inventory.InventoryController,
                            orders.OrdersController, orders.OrderController, stock.StockController,
                            customers.CustomerController, ledger.LedgerController,
                            exceptions.ExceptionsController, admin.AdminController,
                            imports.ImportController],
            exception_handlers={LoginRequired: login_required_handler, AdminOnly: admin_only_handler,
                                NotReady: not_ready_handler},
            include_in_schema=False,
        )
        static = create_static_files_router(path="/ui/static", directories=[HERE / "static"],
                                            opt={"public": True}, include_in_schema=False,
                                            send_as_attachment=False)
        return [pages, static]

    async def start(self, app: Litestar, shared: Shared) -> None:
        settings = shared.settings
        services = await shared.home()
        # CSRFConfig is read per request: the secret and the cookie's Secure
        # flag come from the settings, which are only known now
        if settings.ui_secret:
            self.csrf.secret = settings.ui_secret
        self.csrf.cookie_secure = settings.ui_secure_cookies
        app.state.ui = UiState(shared)
        await app.state.ui.start()
        try:
            await ensure_first_admin(services.store, services.records, settings.admin_email,
                                     settings.admin_password, now_ms())
        except Exception as exc:  # noqa: BLE001 - PostgreSQL down at start: the UI still serves
            log.warning("could not check for a first admin user (ONHAND_ADMIN_EMAIL): %r", exc)

    async def stop(self, app: Litestar) -> None:
        ui = getattr(app.state, "ui", None)
        if ui is not None:
            await ui.close()
