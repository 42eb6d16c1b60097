"""Admins only: staff users (create, disable, enable) and API keys (create:
shown once; revoke)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template

from api.auth import ENV_ADMIN_ID, KeyRecord, KeyRequestError, issue_key
from api.services import Services
from api.views import rfc3339
from engine.commands import Op, PutRecord
from engine.errors import NotFound
from ui.base import admin_guard, current_user, now_ms, page
from ui.users import UserError, create_user, set_disabled

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
IdPath = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class AdminController(Controller):
    path = "/ui/admin"
    guards = [admin_guard]

    async def _users(self, request: Request, services: Services, *, status_code: int = 200,
                     error: str | None = None, notice: str | None = None) -> Template:
        docs, total = await services.records.users(limit=200, offset=0)
        users = [{"id": d["id"], "email": d["email"], "role": d["role"], "disabled": d.get("disabled", False),
                  "created": rfc3339(d.get("created_at_ms"))[:10]} for d in docs]
        return page(request, "users.html", title="Users", users=users, total=total, status_code=status_code,
                    error=error, notice=notice)

    @get("/users")
    async def users(self, request: Request, services: NamedDependency[Services]) -> Template:
        return await self._users(request, services)

    @post("/users", status_code=303)
    async def create(self, request: Request, data: Form, services: NamedDependency[Services]) -> Response | Template:
        try:
            user = await create_user(services.store, data.get("email", ""), data.get("password", ""),
                                     data.get("role", ""), actor=current_user(request).actor, now_ms=now_ms())
        except UserError as exc:
            return await self._users(request, services, status_code=400, error=f"Not created: {exc}")
        return await self._users(request, services, notice=f"User {user.email} ({user.role}) created.")

    @post("/users/{user_id:str}/{action:str}", status_code=303)
    async def enable(self, request: Request, user_id: IdPath,
                     action: Annotated[str, Parameter(pattern="^(enable|disable)$")],
                     services: NamedDependency[Services]) -> Response | Template:
        me = current_user(request)
        if action not in ("disable", "enable") or (user_id == me.id and action == "disable"):
            return await self._users(request, services, status_code=400, error="You cannot disable yourself.")
        user = await set_disabled(services.store, user_id, action == "disable", actor=me.actor, now_ms=now_ms())
        if user is None:
            return await self._users(request, services, status_code=404, error="No such user.")
        return Redirect("/ui/admin/users", status_code=303)

    async def _keys(self, request: Request, services: Services, *, status_code: int = 200,
                    error: str | None = None, created: str | None = None) -> Template:
        docs, total = await services.records.api_keys(limit=200, offset=0)
        keys = [msgspec.convert(d, KeyRecord) for d in docs]
        return page(request, "keys.html", title="API keys", keys=keys, total=total, status_code=status_code,
                    error=error, created=created, created_at=lambda r: rfc3339(r.created_at_ms)[:10])

    @get("/keys")
    async def keys(self, request: Request, services: NamedDependency[Services]) -> Template:
        return await self._keys(request, services)

    @post("/keys", status_code=200)
    async def create_key(self, request: Request, data: Form, services: NamedDependency[Services]) -> Template:
        try:
            _, key = await issue_key(services.store, data.get("role", ""), (data.get("customer_id") or "").strip()
                                     or None, (data.get("name") or "").strip()[:255] or None, now_ms())
        except (KeyRequestError, ValueError) as exc:
            return await self._keys(request, services, status_code=400, error=f"Not created: {exc}")
        # shown this once (the page is not cached); onhand keeps only its hash
        response = await self._keys(request, services, created=key)
        response.headers["Cache-Control"] = "no-store"
        return response

    @post("/keys/{key_id:str}/revoke", status_code=303)
    async def revoke(self, request: Request, key_id: IdPath, services: NamedDependency[Services]) -> Response | Template:
        if key_id == ENV_ADMIN_ID:
            return await self._keys(request, services, status_code=400, error="The ONHAND_ADMIN_KEY key cannot be revoked here.")
        try:
            await services.store.run(PutRecord(kind="api_key", id=key_id, doc=None),
                                     Op(op_id=f"revoke-{key_id}-{now_ms()}", now_ms=now_ms(),
                                        actor=current_user(request).actor))
        except NotFound:
            return await self._keys(request, services, status_code=404, error="No such key.")
        return Redirect("/ui/admin/keys", status_code=303)
