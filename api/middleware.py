"""The API's one ASGI middleware: request metrics, OPTIONS ``Allow``,
authentication and the per-key rate limit for /v1 routes (so guards see the
principal), and the repeated-query check. Public routes opt out of
authentication with opt={"public": True} (the staff UI's pages with
opt={"session_auth": True}: they have their own session guard); routes whose writes all go through
one guarded FCALL take their rate-limit step there (opt={"rate_limit":
"in_call"}, api/ratelimit.py).

What depends only on the route (public or not, the label its metrics carry,
its Allow header, which query parameters take one value, the metric series)
is worked out once per route handler and kept, not on every request."""

from __future__ import annotations

import time
from collections import Counter
from urllib.parse import parse_qsl

from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import RouteMetrics
from api.operations import now_ms
from api.problems import VALIDATION, ApiProblem, send_problem
from api.ratelimit import RATE_SCOPE, RateState, Verdict, rate_headers, refusal


class _Route:
    """What the middleware needs of one route handler, computed once."""

    __slots__ = ("public", "in_call", "label", "allow", "single")

    def __init__(self, app, handler) -> None:
        # the staff UI's pages (opt session_auth) have their own session guard (ui/base.py)
        self.public = bool(handler.opt.get("public") or handler.opt.get("session_auth"))
        self.in_call = handler.opt.get("rate_limit") == "in_call"
        self.label = sorted(handler.paths)[0]
        # Litestar's automatic OPTIONS handler keeps the methods of the first
        # handlers registered for a path and misses those added later on the
        # same path (GET next to POST), so Allow is rebuilt from the route map
        route_map = app.route_handler_method_map
        methods: set[str] = set()
        for path in handler.paths:
            methods.update(str(m) for m in route_map.get(path, {}))
        self.allow = ", ".join(sorted(methods | {"OPTIONS"})).encode()
        params = handler.parsed_fn_signature.parameters
        #: query parameters that take one value (given twice: a 400)
        self.single = frozenset(n for n, p in params.items() if not p.is_non_string_sequence)


def _repeated(route: _Route, query: bytes) -> ApiProblem | None:
    counts = Counter(name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    repeated = [n for n, c in counts.items() if c > 1 and n in route.single]
    if not repeated:
        return None
    return ApiProblem(VALIDATION, f"query parameter {repeated[0]!r} takes one value",
                      errors=[{"field": n, "message": "given more than once"} for n in repeated])


class OnhandMiddleware(ASGIMiddleware):
    scopes = ("http",)

    def __init__(self) -> None:
        self._routes: dict[int, _Route] = {}
        self.metrics = RouteMetrics()

    def _route(self, scope: Scope, handler) -> _Route:
        route = self._routes.get(id(handler))
        if route is None:
            route = self._routes[id(handler)] = _Route(scope["litestar_app"], handler)
        return route

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        start = time.perf_counter()
        handler = scope.get("route_handler")
        method = scope["method"]
        route = self._route(scope, handler) if handler is not None else None
        status = 500
        verdict: Verdict | None = None
        state: RateState | None = None
        limiter = None
        principal = None
        replaced = False
        options = method == "OPTIONS" and route is not None

        async def respond(message: Message) -> None:
            nonlocal status, replaced, verdict
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if options:
                    headers = [(k, v) for k, v in headers if k.lower() != b"allow"]
                    headers.append((b"allow", route.allow))
                if state is not None:
                    if not state.taken:
                        # the request ended before its FCALL: count it now
                        state.verdict, state.taken = await limiter.check(principal, now_ms()), True
                    verdict = state.verdict
                    if verdict is not None and not verdict.allowed and not state.in_call:
                        replaced = True
                        problem = refusal(verdict)
                        status = problem.kind.status
                        await send_problem(send, problem)
                        return
                if verdict is not None and verdict.allowed:
                    headers = [*headers, *rate_headers(verdict)]
                message["headers"] = headers
                status = message["status"]
            elif replaced:
                return
            await send(message)

        try:
            # OPTIONS (Allow) tells nothing about data: answered without a key;
            # the OpenAPI document is public
            if route is not None and not (route.public or options or scope["path"].startswith("/schema")):
                services = scope["litestar_app"].state.shared
                auth = None
                for name, value in scope.get("headers") or ():
                    if name == b"authorization":
                        auth = value.decode("latin-1")
                        break
                try:
                    principal = await services.authenticator.authenticate(auth)
                    scope["user"] = principal
                    limiter = services.limiter
                    if route.in_call:
                        state = RateState(principal)
                        scope[RATE_SCOPE] = state  # type: ignore[literal-required]
                    else:
                        verdict = await limiter.check(principal, now_ms())
                        if verdict is not None and not verdict.allowed:
                            raise refusal(verdict)
                except ApiProblem as problem:
                    status = problem.kind.status
                    await send_problem(send, problem)
                    return
            query = scope.get("query_string")
            if route is not None and query and route.single:
                problem = _repeated(route, query)
                if problem is not None:
                    if state is not None and not state.taken:
                        state.verdict, state.taken = await limiter.check(principal, now_ms()), True
                        if state.verdict is not None and not state.verdict.allowed:
                            problem = refusal(state.verdict)
                    elif state is not None:
                        pass
                    extra = dict(problem.headers or {})
                    v = state.verdict if state is not None else verdict
                    if v is not None and v.allowed:
                        extra.update(v.headers())
                    problem.headers = extra
                    status = problem.kind.status
                    await send_problem(send, problem)
                    return
            await next_app(scope, receive, respond)
        finally:
            self.metrics.observe(method, route.label if route is not None else "unmatched", status,
                          time.perf_counter() - start)
