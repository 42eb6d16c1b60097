"""The order path's four routes, served straight from the ASGI scope in front
of Litestar's router: ``POST /v1/orders``, ``GET /v1/orders/{id}``,
``GET /v1/inventory/{sku}`` and ``POST /webhooks/shopify``.

Why: an order's own work (authenticate from the key cache, decode the body
strictly, build the command, one FCALL, the view) costs less than the
framework around it did. Litestar's path for one request builds a Request,
resolves the handler's parameters and decodes the body leniently for them,
wraps ``send`` in two exception middlewares, runs the CSRF middleware (for
the staff UI) and ours; about 40% of an order's CPU on this machine
(docs/benchmarks.md). Here a request is matched by method and path in a dict,
read once and answered with two ASGI messages.

What stays the same: each route is still a Litestar route, which describes it
in the OpenAPI document and answers the requests this leaves to it (a query
string, a root path, a trailing slash, a path parameter that is not valid, a
Host header that is not valid): both call the same functions
(api.orders.place and read_one, api.inventory.read_one,
api.webhooks.receive_delivery), so both answer alike
(tests/e2e/test_hot_routes.py sends requests both ways and compares). What
the middleware does for Litestar's routes is done here the same way: the
same authentication (API keys; the webhook checks its own signature), the
per-key rate limit taken in the route's one Redis call with its RateLimit
headers, request metrics under the same route labels, and errors answered by
the app's exception handlers (api/problems.py).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from litestar import Litestar, Request
# the router's own Host check (a private module: litestar is bounded <3 in
# pyproject.toml, and tests/e2e/test_hot_routes.py runs every route through it)
from litestar._asgi.utils import is_valid_host
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import ASGIApp, Receive, Scope, Send

from api import inventory, orders, webhooks
from api import schemas as s
from api.auth import Principal
from api.metrics import RouteMetrics
from api.operations import now_ms
from api.problems import error_response, exception_handlers
from api.ratelimit import RATE_SCOPE, RateState, rate_headers, refusal
from api.services import Shared

log = logging.getLogger("onhand.api")

#: Largest order body, bytes (API.md: 1 MiB, as api.app.MAX_BODY_BYTES).
MAX_BODY_BYTES = 1024 * 1024
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # api.orders.IdPath
_SKU = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")  # api.inventory.SkuPath
_JSON = b"application/json"
#: The request headers the routes read (the first of each, as Litestar's Headers.get).
_WANTED = frozenset((b"authorization", b"content-length", b"host"))
#: Metric labels: the Litestar route paths, as the middleware labels its routes.
ORDERS, ORDER, INVENTORY, WEBHOOK = ("/v1/orders", "/v1/orders/{order_id:str}", "/v1/inventory/{sku:str}",
                                     "/webhooks/shopify")


class _ClientGone(Exception):
    """Raised when the client disconnected before its body was read: nobody to answer."""


class HotRoutes:
    """The ASGI app in front of Litestar's (``app.asgi_handler``)."""

    def __init__(self, app: Litestar, next_app: ASGIApp):
        self.app = app
        self.next = next_app
        self.metrics = RouteMetrics()
        self._handlers = exception_handlers()
        #: requests served here, by route label (what Litestar got instead is not counted)
        self.served: Counter = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("query_string") and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            if method == "POST":
                if path == ORDERS:
                    return await self._serve(scope, receive, send, ORDERS, self._place, None)
                if path == WEBHOOK:
                    return await self._serve(scope, receive, send, WEBHOOK, self._webhook, None)
            elif method == "GET":
                if path.startswith("/v1/orders/") and _ID.fullmatch(path, 11):
                    return await self._serve(scope, receive, send, ORDER, self._order, path[11:])
                if path.startswith("/v1/inventory/") and _SKU.fullmatch(path, 14):
                    return await self._serve(scope, receive, send, INVENTORY, self._inventory, path[14:])
        await self.next(scope, receive, send)

    @property
    def shared(self) -> Shared:
        return self.app.state.shared  # made in the lifespan

    async def _serve(self, scope: Scope, receive: Receive, send: Send, label: str,
                     route: Callable[..., Awaitable[tuple[int, bytes, Callable | None]]], arg) -> None:
        start = time.perf_counter()
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _WANTED and name not in headers:
                headers[name] = value
        host = headers.get(b"host")
        if host is not None and not is_valid_host(host):
            return await self.next(scope, receive, send)  # Litestar's router answers it (400)
        status, started = 500, False
        self.served[label] += 1
        try:
            status, body, after = await route(scope, receive, headers, arg)
            state: RateState | None = scope.get(RATE_SCOPE)
            extra = []
            if state is not None:
                if not state.taken:  # a route that ended before its Redis call
                    await self._take_rate_step(state)
                    if state.verdict is not None and not state.verdict.allowed:
                        raise refusal(state.verdict)
                extra = rate_headers(state.verdict)
            started = True
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", _JSON), (b"content-length", str(len(body)).encode()),
                                    *extra]})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            if after is not None:
                await after()
        except _ClientGone:
            status = 499
        except Exception as exc:  # noqa: BLE001 - answered as Litestar's exception middleware would
            if started:
                log.warning("%s %s: error after the response started: %r", scope["method"], scope["path"], exc)
            else:
                status = await self._fail(scope, receive, send, exc)
        finally:
            self.metrics.observe(scope["method"], label, status, time.perf_counter() - start)

    async def _fail(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> int:
        """Answers ``exc`` with the app's exception handlers; a request whose
        rate-limit step was not taken yet is counted now, and answered 429
        instead when over the limit (as the middleware does)."""
        state: RateState | None = scope.get(RATE_SCOPE)
        extra: list = []
        if state is not None:
            try:
                if not state.taken:
                    await self._take_rate_step(state)
                    if state.verdict is not None and not state.verdict.allowed:
                        exc = refusal(state.verdict)
                extra = rate_headers(state.verdict)
            except Exception as rate_exc:  # noqa: BLE001 - Redis failed meanwhile: that is the answer
                exc = rate_exc
        request = Request(scope, receive)
        response = error_response(self._handlers, request, exc)
        status = response.status_code

        async def with_rate(message) -> None:
            if message["type"] == "http.response.start" and extra:
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await response.to_asgi_response(app=None, request=request)(scope, receive, with_rate)
        return status

    async def _take_rate_step(self, state: RateState) -> None:
        state.verdict, state.taken = await self.shared.limiter.check(state.principal, now_ms()), True

    async def _principal(self, scope: Scope, headers: dict[bytes, bytes]) -> Principal:
        auth = headers.get(b"authorization")
        principal = await self.shared.authenticator.authenticate(auth.decode("latin-1") if auth else None)
        scope["user"] = principal
        scope[RATE_SCOPE] = RateState(principal)  # type: ignore[literal-required]
        return principal

    # ------------------------------------------------------------ the routes

    async def _place(self, scope: Scope, receive: Receive, headers: dict, _) -> tuple[int, bytes, None]:
        principal = await self._principal(scope, headers)
        services = await self.shared.for_merchant(principal.merchant)
        data = s.decode_strict(await _body(receive, headers, MAX_BODY_BYTES), s.OrderBody)
        return 201, await orders.place(services, scope, principal, data), None

    async def _order(self, scope: Scope, receive: Receive, headers: dict, order_id: str) -> tuple[int, bytes, None]:
        principal = await self._principal(scope, headers)
        services = await self.shared.for_merchant(principal.merchant)
        return 200, await orders.read_one(services, scope, principal, order_id), None

    async def _inventory(self, scope: Scope, receive: Receive, headers: dict, sku: str) -> tuple[int, bytes, None]:
        principal = await self._principal(scope, headers)
        services = await self.shared.for_merchant(principal.merchant)
        return 200, await inventory.read_one(services, scope, principal, sku), None

    async def _webhook(self, scope: Scope, receive: Receive, headers: dict, _) -> tuple[int, bytes, Callable | None]:
        body = await _body(receive, headers, webhooks.MAX_WEBHOOK_BODY_BYTES)
        shopify_headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name.startswith(b"x-shopify-"):
                shopify_headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        ack, after = await webhooks.receive_delivery(await self.shared.home(), shopify_headers, body)
        return 200, ack, after


async def _body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes (413) as Litestar
    refuses it: by its Content-Length before reading, else as it streams."""
    announced = headers.get(b"content-length")
    if announced is not None:
        try:
            length = int(announced)
        except ValueError:
            raise ClientException(f"Invalid content-length: {announced.decode('latin-1')!r}") from None
        if length > limit:
            raise RequestEntityTooLarge
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                total += len(chunk)
                if total > limit:
                    raise RequestEntityTooLarge
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise _ClientGone
