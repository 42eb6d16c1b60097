"""Signing in and out. The form is a plain email and password form that
password managers fill (autocomplete username / current-password, nothing
blocks pasting); a login always starts a new session id."""

from __future__ import annotations

import logging
from typing import Annotated

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.services import Services
from persistence.merchants import MERCHANT_ID
from ui.base import current_user, now_ms, page, parse_session_cookie, session_cookie, ui_state
from ui.sessions import COOKIE
from ui.users import authenticate

log = logging.getLogger("onhand.ui")

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _safe_next(target: str | None) -> str:
    """Only a path inside the UI (never another site: an open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/orders/new"


async def _many_merchants(request: Request) -> bool:
    """Whether the form asks for a merchant (a deployment with more than the home one)."""
    return bool(await ui_state(request).shared.merchants.others())


class LoginController(Controller):
    path = "/ui"

    @get("/login", opt={"no_session": True})
    async def login_page(self, request: Request) -> Template:
        return page(request, "login.html", title="Sign in", next=_safe_next(request.query_params.get("next")),
                    error=None, email="", merchant=request.query_params.get("merchant", "")[:32],
                    many_merchants=await _many_merchants(request))

    @post("/login", opt={"no_session": True}, status_code=303)
    async def login(self, request: Request, data: Form) -> Response:
        state = ui_state(request)
        email = (data.get("email") or "").strip()[:255]
        password = data.get("password") or ""
        target = _safe_next(data.get("next"))
        # the merchant whose staff user this is: the home merchant unless named
        merchant = (data.get("merchant") or "").strip().lower()[:32] or state.home
        form = {"next": target, "email": email, "merchant": "" if merchant == state.home else merchant,
                "many_merchants": await _many_merchants(request)}
        address = request.client.host if request.client else "unknown"
        account = f"{merchant}\n{email}"
        wait_s = await state.throttle.blocked_for_s(account, address)
        if wait_s:
            log.warning("UI login refused: too many failures (account or address %s)", address)
            return page(request, "login.html", title="Sign in", status_code=429, **form,
                        error=f"Too many failed sign-ins. Try again in {max(1, wait_s // 60)} minute(s).")
        user = None
        if MERCHANT_ID.match(merchant) and await state.shared.merchants.known(merchant):
            services = await state.shared.for_merchant(merchant)
            user = await authenticate(services.store, email, password)
        if user is None:
            await state.throttle.failed(account, address)
            log.info("UI login failed from %s", address)
            return page(request, "login.html", title="Sign in", status_code=401, **form,
                        error="That email and password do not match an active user.")
        await state.throttle.succeeded(account)
        old, old_merchant = parse_session_cookie(request.cookies.get(COOKIE), state.home)
        sessions = state.for_services(services).sessions
        session_id = await sessions.create(user.id, now_ms(), replacing=old if old_merchant == merchant else None)
        if old and old_merchant != merchant and await state.shared.merchants.known(old_merchant):
            await state.for_services(await state.shared.for_merchant(old_merchant)).sessions.end(old)
        log.info("UI login: user %s", user.id)
        response = Redirect(target, status_code=303)
        response.set_cookie(COOKIE, session_cookie(session_id, merchant), path="/ui", httponly=True, samesite="lax",
                            secure=services.settings.ui_secure_cookies,
                            max_age=services.settings.ui_session_max_s)
        return response

    @post("/logout", status_code=303)
    async def logout(self, request: Request, services: NamedDependency[Services]) -> Response:
        user = current_user(request)
        session_id, _ = parse_session_cookie(request.cookies.get(COOKIE), ui_state(request).home)
        await ui_state(request).for_services(services).sessions.end(session_id)
        log.info("UI logout: user %s", user.id)
        response = Redirect("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    @get("/")
    async def home(self) -> Redirect:
        return Redirect("/ui/orders/new", status_code=303)
