"""POST /webhooks/shopify: Shopify's deliveries, verified, deduplicated and
applied before the 200.

The HMAC is checked over the raw bytes before anything is parsed (against the
current secret, and the previous one during a rotation), then the shop domain.
Anything else answers 401 and stores nothing. A verified delivery becomes one
script call (lua/shopify_webhook.lua) that dedupes, reserves or releases, and
writes its records in the same step, so a duplicate - even one racing the
first - finds the record and changes nothing. The slow work (pushing
available back to Shopify, fulfillments) is the workers'.

A cancel or refund for an order Redis does not hold is looked up in
PostgreSQL first (an old, closed order Redis let go is loaded back); an order
never seen is kept pending and applied when its orders/create arrives.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from secrets import token_hex

import msgspec
from litestar import Controller, Request, Response, post
from litestar.background_tasks import BackgroundTask

from api.docs import responses
from api.problems import UNAUTHORIZED, VALIDATION, ApiProblem
from api.responses import EncodedJson
from api.services import Services, services_for
from engine import shopify
from engine.commands import ApplyShopifyDelivery, Op
from engine.errors import NotFound
from engine.store import Result
from onhand.settings import Settings
from persistence.merchants import normalize_shop

log = logging.getLogger("onhand.webhooks")
_encode = msgspec.json.Encoder().encode

#: Largest webhook body, bytes (API.md: 2 MiB), refused before it is read in full.
MAX_WEBHOOK_BODY_BYTES = 2 * 1024 * 1024
#: Longest a sale is held back from Shopify when its 200 is never sent (the
#: process died), milliseconds; normally the hold ends shortly after the 200.
SALE_HOLD_MS = 300_000


class WebhookAck(msgspec.Struct, omit_defaults=True):
    #: "accepted" | "duplicate" | "pending" (kept for an order not seen yet) | "ignored"
    status: str
    order_id: str | None = None


_IGNORED = _encode(WebhookAck(status="ignored"))


def signature_valid(secrets: list[str], body: bytes, signature: str | None) -> bool:
    """base64(HMAC-SHA256(secret, raw body)) against the header, in constant time,
    for each secret given (the current one and, during a rotation, the previous)."""
    if not signature or not secrets:
        return False
    given = signature.strip().encode("latin-1", "replace")
    ok = False
    for secret in secrets:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        # no early exit: every secret is compared
        ok |= hmac.compare_digest(base64.b64encode(digest), given)
    return ok


def authentic(settings: Settings, headers, body: bytes) -> bool:
    secrets = [s for s in (settings.shopify_api_secret, settings.shopify_api_secret_previous) if s]
    if not secrets:
        log.warning("a Shopify webhook came but ONHAND_SHOPIFY_API_SECRET is not set: refused")
    if not signature_valid(secrets, body, headers.get("x-shopify-hmac-sha256")):
        return False
    if settings.shopify_shop:
        domain = headers.get("x-shopify-shop-domain") or ""
        if normalize_shop(domain) != normalize_shop(settings.shopify_shop):
            return False
    return True


def _delivery(headers) -> shopify.Delivery:
    return shopify.Delivery(
        topic=(headers.get("x-shopify-topic") or "").strip().lower(),
        event_id=(headers.get("x-shopify-event-id") or "").strip() or None,
        webhook_id=(headers.get("x-shopify-webhook-id") or "").strip() or None,
        test=(headers.get("x-shopify-test") or "").strip().lower() == "true",
    )


def _ack(result: Result) -> WebhookAck:
    data = result.data
    if data.get("duplicate"):
        return WebhookAck(status="duplicate", order_id=data.get("order_id"))
    if data.get("pending"):
        return WebhookAck(status="pending", order_id=data.get("order_id"))
    return WebhookAck(status="accepted", order_id=data.get("order_id"))


class SaleReleases:
    """Ends the hold on sales whose 200 has been sent: Shopify now has (or
    will read within the window) our answer, so the sync may stop holding
    them back once the window has passed (a duplicate's 200 settles the same
    sales). The releases of one merchant's deliveries answered in one turn
    of the event loop go to Redis together: one pipeline, one ZADD per SKU's
    held sales and one for the SKUs' recheck times. Lost with the process
    (it died after the 200), a hold ends at SALE_HOLD_MS instead."""

    def __init__(self, services: Services):
        self._services = services
        #: (sku, release at ms, held member) since the last flush
        self._pending: list[tuple[str, int, str]] = []
        self._sending: set[asyncio.Task] = set()

    async def add(self, command: ApplyShopifyDelivery) -> None:
        if not command.sold or command.shopify_order_id is None:
            return
        release_at = int(time.time() * 1000) + self._services.settings.shopify_sale_ack_window_ms
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.extend((sku, release_at, f"{command.shopify_order_id}:{units}") for sku, units in command.sold)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[str, int, str]]) -> None:
        prefix = self._services.store.keys.prefix
        held: dict[str, list] = {}
        due: dict[str, int] = {}
        for sku, release_at, member in batch:
            held.setdefault(sku, []).extend((release_at, member))
            due[sku] = min(release_at, due.get(sku, release_at))
        commands = [("ZADD", f"{prefix}:syr:{sku}", "XX", *pairs) for sku, pairs in held.items()]
        # a recheck waiting for these sales comes sooner too
        commands.append(("ZADD", f"{prefix}:sync:due", "XX", "LT", *(x for sku, t in due.items() for x in (t, sku))))
        try:
            for reply in await self._services.store.pipeline(commands):
                if isinstance(reply, Exception):
                    raise reply
        except Exception as exc:  # noqa: BLE001 - the holds then end at SALE_HOLD_MS
            log.warning("could not release %d held-back sales: %r", len(batch), exc)


def sale_releases(services: Services) -> SaleReleases:
    """The merchant's releases (kept with its services, made on first use)."""
    if services.sale_releases is None:
        services.sale_releases = SaleReleases(services)
    return services.sale_releases


async def apply_delivery(services: Services, command: ApplyShopifyDelivery) -> Result:
    """Runs the delivery; a cancel or refund of an order Redis lacks is applied
    to PostgreSQL's copy (loaded back) or kept for an order not seen yet."""
    op = Op(op_id="shopify-" + token_hex(16), now_ms=int(time.time() * 1000), actor="shopify")
    try:
        return await services.store.run(command, op)
    except NotFound as exc:
        if exc.kind != "order" or command.order_id is None:
            raise
    order = await services.reader.get(command.order_id)  # NotReady (503) while PostgreSQL is down
    if order is not None:
        await services.store.load_closed_order(
            order, services.settings.closed_order_retention_s * 1000)
    else:
        command = msgspec.structs.replace(command, if_missing="pend")
    return await services.store.run(command, op)


class ShopifyWebhookController(Controller):
    tags = ["webhooks"]

    @post("/webhooks/shopify", opt={"public": True}, status_code=200,
          request_max_body_size=MAX_WEBHOOK_BODY_BYTES,
          responses=responses(400, 401, 413, 503),
          summary="Shopify webhooks (HMAC-signed): orders/create, orders/cancelled, "
                  "refunds/create, app/uninstalled")
    async def receive(self, request: Request) -> Response[WebhookAck]:
        # api/hot.py serves this route; this handler answers what it leaves
        # to Litestar (a query string, a trailing slash), the same way
        ack, after = await receive_delivery(await services_for(request), request.headers, await request.body())
        return EncodedJson(ack, background=after)


async def receive_delivery(home: Services, headers, body: bytes) -> tuple[bytes, Callable[[], Awaitable] | None]:
    """A delivery, verified and applied: its 200's body (JSON), and what to
    run once that 200 has been sent (None for nothing). ``headers`` maps
    lower-case names to values; ``home`` is the home merchant's services."""
    # the shop's merchant (its own API secret); an unregistered shop is the home merchant's
    services = home
    shop = await home.merchants.by_shop(headers.get("x-shopify-shop-domain") or "")
    if shop is not None:
        services = await home.shared.for_merchant(shop)
    settings = services.settings
    if not authentic(settings, headers, body):
        raise ApiProblem(UNAUTHORIZED, "missing or invalid Shopify signature, or another shop")
    delivery = _delivery(headers)
    try:
        command = shopify.delivery_command(
            delivery, body, received_ms=int(time.time() * 1000),
            record_ttl_ms=settings.idempotency_ttl_s * 1000,
            location_id=shopify.numeric_id(settings.shopify_location_id),
            sale_hold_ms=SALE_HOLD_MS)
    except shopify.MalformedPayload as exc:
        log.error("signed %s delivery %s does not parse: %s", delivery.topic,
                  delivery.webhook_id, exc)
        raise ApiProblem(VALIDATION, f"the {delivery.topic} body does not parse",
                         errors=[{"field": "body", "message": str(exc)[:500]}]) from exc
    if command is None:
        return _IGNORED, None
    result = await apply_delivery(services, command)
    ack = _ack(result)
    # sales the sync holds back until Shopify has our 200 (a duplicate's 200 counts too)
    if result.data.get("held") or (ack.status == "duplicate" and command.sold):
        return _encode(ack), BackgroundTask(sale_releases(services).add, command)
    return _encode(ack), None
