"""Authentication and per-key rate limits for /v1 routes (an ASGI middleware,
so guards see the principal). Public routes opt out with opt={"public": True}."""

from __future__ import annotations

from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.operations import now_ms
from api.problems import RATE_LIMITED, ApiProblem


class AuthMiddleware(ASGIMiddleware):
    scopes = ("http",)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        handler = scope.get("route_handler")
        if handler is None or handler.opt.get("public"):
            await next_app(scope, receive, send)
            return
        services = scope["litestar_app"].state.services
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization")
        principal = await services.authenticator.authenticate(auth.decode("latin-1") if auth else None)
        scope["user"] = principal
        verdict = await services.limiter.check(principal, now_ms())
        if verdict is None:
            await next_app(scope, receive, send)
            return
        if not verdict.allowed:
            raise ApiProblem(RATE_LIMITED, f"over {verdict.limit} requests per second for this key",
                             headers=verdict.headers(), retry_after_s=verdict.retry_after_s)
        extra = [(k.lower().encode(), v.encode()) for k, v in verdict.headers().items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await next_app(scope, receive, send_with_headers)
