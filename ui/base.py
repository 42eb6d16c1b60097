"""What every UI page shares: the session guard, the admin guard, the page
renderer (navigation, the signed-in user, the CSRF token) and the errors
pages answer with."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Redirect, Template

from api.services import Services, Shared
from engine.errors import NotReady
from persistence.merchants import MERCHANT_ID
from ui.live import LiveCounters
from ui.sessions import COOKIE, LoginThrottle, SessionStore
from ui.users import User, get_user

#: The navigation, in order: (path, label, admin only). Other screens (CSV
#: and EDI import, ...) add a row here.
NAV: list[tuple[str, str, bool]] = [
    ("/ui/orders/new", "Order entry", False),
    ("/ui/inventory", "Inventory", False),
    ("/ui/orders", "Orders", False),
    ("/ui/receive", "Receive stock", False),
    ("/ui/import", "Import", False),
    ("/ui/returns", "Returns", False),
    ("/ui/customers", "Customers", False),
    ("/ui/ledger", "Ledger", False),
    ("/ui/exceptions", "Exceptions", False),
    ("/ui/admin/users", "Users", True),
    ("/ui/admin/keys", "API keys", True),
]


def now_ms() -> int:
    return int(time.time() * 1000)


class LoginRequired(HTTPException):
    """Raised when a UI route is asked for without a live session."""

    status_code = 401


class AdminOnly(HTTPException):
    """Raised when an operator asks for an admin-only screen."""

    status_code = 403


@dataclass(frozen=True)
class UiServices:
    """One merchant's UI parts: its sessions and its live counters."""

    sessions: SessionStore
    live: LiveCounters


class UiState:
    """The UI's per-process state (app.state.ui): each merchant's session
    store and live-counter watcher, made when first needed, and the login
    throttle. Staff users, sessions and counters are the merchant's own, in
    its Redis slot; the throttle counts in the home merchant's slot, so a
    client cycling through merchants is still one address."""

    def __init__(self, shared: Shared):
        self.shared = shared
        s = shared.settings
        self.home = s.merchant
        self._merchants: dict[str, UiServices] = {}
        self.throttle: LoginThrottle | None = None

    async def start(self) -> None:
        s = self.shared.settings
        home = await self.shared.home()
        self.throttle = LoginThrottle(home.store, per_account=s.ui_login_failures_per_account,
                                      per_address=s.ui_login_failures_per_address, window_s=s.ui_login_window_s)

    def for_services(self, services: Services) -> UiServices:
        merchant = services.store.keys.merchant
        ui = self._merchants.get(merchant)
        if ui is None:
            s = services.settings
            ui = self._merchants[merchant] = UiServices(
                sessions=SessionStore(services.store, idle_s=s.ui_session_idle_s, max_s=s.ui_session_max_s),
                live=LiveCounters(services.store))
        return ui

    async def close(self) -> None:
        for ui in self._merchants.values():
            await ui.live.close()


def ui_state(connection: ASGIConnection) -> UiState:
    return connection.app.state.ui


def session_cookie(session_id: str, merchant: str) -> str:
    """The cookie's value: the session id and the merchant whose Redis slot
    holds it (like an API key id, the merchant leads to the one slot)."""
    return f"{session_id}.{merchant}"


def parse_session_cookie(value: str | None, home: str) -> tuple[str | None, str]:
    if not value:
        return None, home
    session_id, dot, merchant = value.rpartition(".")
    if not dot:
        return value, home  # a cookie from before merchants: the home merchant's
    return session_id, merchant


async def session_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Every UI route but the login needs a live session of an enabled user;
    the request then works with that user's merchant (api/app.py's
    ``services`` dependency reads it from ``ui_user``)."""
    if handler.opt.get("no_session"):
        return
    state = ui_state(connection)
    session_id, merchant = parse_session_cookie(connection.cookies.get(COOKIE), state.home)
    if session_id is None or not MERCHANT_ID.match(merchant) or not await state.shared.merchants.known(merchant):
        raise LoginRequired()
    services = await state.shared.for_merchant(merchant)
    session = await state.for_services(services).sessions.load(session_id, now_ms())
    user = await get_user(services.store, session.user_id) if session else None
    if user is None or user.disabled:
        raise LoginRequired()
    connection.scope["ui_user"] = user


def admin_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    user = connection.scope.get("ui_user")
    if not isinstance(user, User) or not user.is_admin:
        raise AdminOnly()


def current_user(request: Request) -> User:
    return request.scope["ui_user"]


def page(request: Request, template: str, *, title: str, status_code: int = 200, **context: Any) -> Template:
    user = request.scope.get("ui_user")
    nav = [(path, label) for path, label, admin in NAV if not admin or (user and user.is_admin)]
    return Template(template_name=template, status_code=status_code, context={
        "title": title, "user": user, "nav": nav, "path": request.url.path, **context})


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def login_required_handler(request: Request, _: LoginRequired) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"/ui/login?next={quote(target, safe='')}" if request.method == "GET" else "/ui/login"
    if is_htmx(request) or request.headers.get("accept", "").startswith(("application/json", "text/event-stream")):
        # fragments, fetches and streams: no page to redirect, tell the script where to go
        return Response({"detail": "sign in first"}, status_code=401, headers={"HX-Redirect": login})
    return Redirect(login, status_code=303)


def not_ready_handler(request: Request, exc: NotReady) -> Template | Response:
    """A store the screen needs is down: say so on a page (PostgreSQL down
    leaves order entry and order pages working; they need only Redis)."""
    if is_htmx(request) or request.headers.get("accept", "").startswith("application/json"):
        return Response({"detail": exc.detail, "retry": True}, status_code=503,
                        headers={"Retry-After": str(exc.retry_after_s)})
    return page(request, "error.html", title="Not available right now", status_code=503,
                message=f"{exc.detail}. Order entry and order pages need only Redis and still work; "
                        "try this screen again shortly.")


def admin_only_handler(request: Request, _: AdminOnly) -> Template:
    return page(request, "error.html", title="Admins only", status_code=403,
                message="This screen is for admins. Ask an admin if you need it.")
