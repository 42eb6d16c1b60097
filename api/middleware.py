"""Authentication and per-key rate limits for /v1 routes (an ASGI middleware,
so guards see the principal). Public routes opt out with opt={"public": True}."""

from __future__ import annotations

from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

import msgspec

from api.operations import now_ms
from api.problems import PROBLEM_JSON, RATE_LIMITED, VALIDATION, ApiProblem
from api.ratelimit import RATE_SCOPE, RateState, Verdict


class AuthMiddleware(ASGIMiddleware):
    scopes = ("http",)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        handler = scope.get("route_handler")
        # OPTIONS (Allow) tells nothing about data: answered without a key
        # the staff UI's pages (opt session_auth) have their own session guard (ui/base.py)
        if (handler is None or handler.opt.get("public") or handler.opt.get("session_auth")
                or scope.get("method") == "OPTIONS"
                or scope["path"].startswith("/schema")):  # the OpenAPI document is public
            await next_app(scope, receive, send)
            return
        services = scope["litestar_app"].state.shared
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization")
        principal = await services.authenticator.authenticate(auth.decode("latin-1") if auth else None)
        scope["user"] = principal
        if handler.opt.get("rate_limit") == "in_call":
            # the handler's FCALL takes the step (api/ratelimit.py)
            await _with_rate_in_call(scope, receive, send, next_app, services.limiter, principal)
            return
        verdict = await services.limiter.check(principal, now_ms())
        if verdict is None:
            await next_app(scope, receive, send)
            return
        if not verdict.allowed:
            raise _refusal(verdict)
        extra = [(k.lower().encode(), v.encode()) for k, v in verdict.headers().items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await next_app(scope, receive, send_with_headers)


def _refusal(verdict: Verdict) -> ApiProblem:
    return ApiProblem(RATE_LIMITED, f"over {verdict.limit} requests per second for this key",
                      headers=verdict.headers(), retry_after_s=verdict.retry_after_s)


async def _with_rate_in_call(scope: Scope, receive: Receive, send: Send, next_app: ASGIApp,
                             limiter, principal) -> None:
    state = RateState(principal)
    scope[RATE_SCOPE] = state  # type: ignore[literal-required]
    replaced = False

    async def send_counted(message: Message) -> None:
        nonlocal replaced
        if message["type"] == "http.response.start":
            if not state.taken:
                # the request ended before its FCALL: count it now
                state.verdict, state.taken = await limiter.check(principal, now_ms()), True
            verdict = state.verdict
            if verdict is not None:
                if not verdict.allowed:
                    if not state.in_call:
                        replaced = True
                        await _send_problem(send, _refusal(verdict))
                        return
                else:
                    message["headers"] = [*message.get("headers", []),
                                          *((k.lower().encode(), v.encode()) for k, v in verdict.headers().items())]
        elif replaced:
            return
        await send(message)

    await next_app(scope, receive, send_counted)


async def _send_problem(send: Send, problem: ApiProblem) -> None:
    kind = problem.kind
    body = msgspec.json.encode({"type": kind.type, "title": kind.title, "status": kind.status,
                                "detail": problem.detail, **problem.extensions})
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
               *((k.lower().encode(), v.encode()) for k, v in (problem.headers or {}).items())]
    await send({"type": "http.response.start", "status": kind.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class AllowHeaderMiddleware(ASGIMiddleware):
    """Answers OPTIONS with every method of the path in ``Allow``.

    Litestar's automatic OPTIONS handler keeps the methods of the first
    handlers registered for a path and misses those added later on the same
    path (GET next to POST), so the header is rebuilt from the app's route map.
    """

    scopes = ("http",)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        handler = scope.get("route_handler")
        if scope.get("method") != "OPTIONS" or handler is None:
            await next_app(scope, receive, send)
            return
        route_map = scope["litestar_app"].route_handler_method_map
        methods: set[str] = set()
        for path in handler.paths:
            methods.update(str(m) for m in route_map.get(path, {}))
        allow = ", ".join(sorted(methods | {"OPTIONS"})).encode()

        async def send_allow(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message["headers"] = [*headers, (b"allow", allow)]
            await send(message)

        await next_app(scope, receive, send_allow)


class RepeatedQueryMiddleware(ASGIMiddleware):
    """A query parameter that takes one value, given several times, is a 400
    (Litestar would silently keep one of them)."""

    scopes = ("http",)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        handler = scope.get("route_handler")
        query = scope.get("query_string") or b""
        if handler is not None and query:
            from collections import Counter
            from urllib.parse import parse_qsl

            counts = Counter(name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True))
            params = handler.parsed_fn_signature.parameters
            repeated = [n for n, c in counts.items()
                        if c > 1 and n in params and not params[n].is_non_string_sequence]
            if repeated:
                raise ApiProblem(VALIDATION, f"query parameter {repeated[0]!r} takes one value",
                                 errors=[{"field": n, "message": "given more than once"} for n in repeated])
        await next_app(scope, receive, send)
