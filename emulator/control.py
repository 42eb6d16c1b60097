"""The control API under `/_emulator/` (no auth): what tests use to drive the shop.

Shop setup
  POST /_emulator/reset           empty shop, default locations, logs cleared
  POST /_emulator/products        [{sku, available, title?, price?,
                                    inventory_policy: DENY|CONTINUE,
                                    levels?: {location name or id: qty}}]
                                  -> 201 {"variants": [...]}
  POST /_emulator/locations       {name}
  POST /_emulator/inventory       {sku | variant_id, available, location?}
                                  direct stock write, not an API call, not in the set log

Storefront and admin actions (each queues its webhooks)
  POST /_emulator/storefront/orders     {lines: [{sku | variant_id, quantity}], test?, email?}
                                        201 {order, webhooks}; 409 when a DENY variant is short
  POST /_emulator/orders/{id}/cancel    {restock: bool, reason?}
                                        -> orders/cancelled + refunds/create
  POST /_emulator/orders/{id}/refunds   {lines: [{line_item_id, quantity, restock_type}], note?}
                                        restock_type: no_restock|cancel|return|legacy_restock
  POST /_emulator/app/uninstall         app/uninstalled; the access token stops working

Webhooks
  GET  /_emulator/webhooks          mode, queue and every attempt
  POST /_emulator/webhooks/mode     {mode: immediate|delay_ms|hold, delay_ms?}
  POST /_emulator/webhooks/config   {url?, retry_schedule_s?, timeout_s?, api_version?}
  POST /_emulator/webhooks/flush    {shuffle?, duplicates?: [min, max], concurrency?,
                                     spread_s?, topics?, order_ids?, seed?, wait?}
  POST /_emulator/webhooks/drain    {timeout_s?}  wait until no delivery or retry is pending
  POST /_emulator/webhooks/send     {topic, body? | raw_body?, sign: valid|bad|none,
                                     shop_domain?, api_version?, order_id?, url?}
                                    one attempt, no retry (negative tests)

Rate limits
  POST /_emulator/throttle   {next_429: n, retry_after_s?}  the next n Admin calls answer 429
  POST /_emulator/bucket     {maximum_available?, restore_rate?, currently_available?,
                              single_query_max?}

Reading
  GET  /_emulator/state      inventory per SKU (with undelivered counts), orders,
                             fulfillments, set log, call log, validation failures,
                             unsupported fields, webhooks and attempts, bucket
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post

from emulator import storefront
from emulator.outbox import WebhookRecord
from emulator.state import SeedProduct
from emulator.storefront import Cancel, Purchase, RefundRequest, StorefrontError
from emulator.webhooks import DeliveryMode, FlushOptions, SignMode, new_record


class LocationRequest(msgspec.Struct, kw_only=True):
    name: str


class InventoryRequest(msgspec.Struct, kw_only=True):
    available: int
    sku: str | None = None
    variant_id: int | None = None
    location: str | None = None


class ModeRequest(msgspec.Struct, kw_only=True):
    mode: DeliveryMode
    delay_ms: int = 0


class WebhookConfigRequest(msgspec.Struct, kw_only=True):
    url: str | msgspec.UnsetType | None = msgspec.UNSET
    retry_schedule_s: list[float] | None = None
    timeout_s: float | None = None
    api_version: str | None = None


class DrainRequest(msgspec.Struct, kw_only=True):
    timeout_s: float = 10.0


class SendRequest(msgspec.Struct, kw_only=True):
    topic: str
    body: Any = None
    # Sent byte for byte, e.g. a fixture file as read from disk.
    raw_body: str | None = None
    sign: SignMode = "valid"
    shop_domain: str | None = None
    api_version: str | None = None
    order_id: int | None = None
    test: bool | None = None
    url: str | None = None


class ThrottleRequest(msgspec.Struct, kw_only=True):
    next_429: int
    retry_after_s: float = 2.0


class BucketRequest(msgspec.Struct, kw_only=True):
    maximum_available: float | None = None
    restore_rate: float | None = None
    currently_available: float | None = None
    single_query_max: int | None = None


def _json(content: Any, status: int = 200) -> Response:
    return Response(content=content, status_code=status, media_type="application/json")


async def _body(request: Request, shape: Any) -> Any:
    """Decode the JSON body into `shape`; a 400 Response when it does not fit.

    Decoding here rather than through a `data` parameter keeps the handlers
    independent of how the installed Litestar 2.x marks request bodies.
    """
    raw = await request.body()
    try:
        return msgspec.json.decode(raw or b"{}", type=shape)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return _json({"error": "invalid_body", "message": str(exc)}, 400)


def _failure(exc: StorefrontError) -> Response:
    return _json({"error": exc.code, "message": exc.message, "detail": exc.detail}, exc.status)


def _webhook_ids(records: list[WebhookRecord]) -> list[dict[str, Any]]:
    return [{"webhook_id": r.webhook_id, "event_id": r.event_id, "topic": r.topic} for r in records]


class ControlController(Controller):
    path = "/_emulator"

    @get("/state")
    async def state(self, request: Request) -> Response:
        state = request.app.state
        emu = state.emulator
        snapshot = emu.shop.snapshot()
        snapshot["bucket"] = emu.bucket.status()
        snapshot["webhook_mode"] = {
            "mode": emu.dispatcher.mode,
            "delay_ms": emu.dispatcher.delay_ms,
        }
        return _json(snapshot)

    @post("/reset")
    async def reset(self, request: Request) -> Response:
        state = request.app.state
        await state.emulator.reset()
        return _json({"ok": True})

    @post("/products")
    async def products(self, request: Request) -> Response:
        state = request.app.state
        data = await _body(request, list[SeedProduct])
        if isinstance(data, Response):
            return data
        shop = state.emulator.shop
        try:
            variants = [shop.seed_product(spec) for spec in data]
        except KeyError as exc:
            return _json({"error": "unknown_location", "message": str(exc)}, 422)
        snapshot = shop.inventory_snapshot()
        return _json({"variants": [snapshot[v.sku or v.gid] for v in variants]}, 201)

    @post("/locations")
    async def locations(self, request: Request) -> Response:
        state = request.app.state
        data = await _body(request, LocationRequest)
        if isinstance(data, Response):
            return data
        location = state.emulator.shop.add_location(data.name)
        return _json(
            {"id": location.id, "admin_graphql_api_id": location.gid, "name": location.name}, 201
        )

    @post("/inventory")
    async def inventory(self, request: Request) -> Response:
        state = request.app.state
        data = await _body(request, InventoryRequest)
        if isinstance(data, Response):
            return data
        shop = state.emulator.shop
        variant = (
            shop.variants.get(data.variant_id)
            if data.variant_id is not None
            else shop.variant_by_sku(data.sku or "")
        )
        if variant is None:
            return _json({"error": "unknown_variant"}, 404)
        location = shop.location_by_ref(data.location) if data.location else shop.primary_location
        if location is None:
            return _json({"error": "unknown_location"}, 404)
        shop.set_available(variant, data.available, location.id)
        return _json(shop.inventory_snapshot()[variant.sku or variant.gid])

    @post("/storefront/orders")
    async def purchase(self, request: Request) -> Response:
        state = request.app.state
        data = await _body(request, Purchase)
        if isinstance(data, Response):
            return data
        emu = state.emulator
        try:
            order, records = storefront.purchase(emu.shop, data)
        except StorefrontError as exc:
            return _failure(exc)
        emu.publish(records)
        return _json(
            {"order": emu.shop.order_snapshot(order), "webhooks": _webhook_ids(records)}, 201
        )

    @post("/orders/{order_id:int}/cancel")
    async def cancel(self, request: Request) -> Response:
        state, order_id = request.app.state, int(request.path_params["order_id"])
        data = await _body(request, Cancel)
        if isinstance(data, Response):
            return data
        emu = state.emulator
        try:
            order, records = storefront.cancel(emu.shop, order_id, data)
        except StorefrontError as exc:
            return _failure(exc)
        emu.publish(records)
        return _json({"order": emu.shop.order_snapshot(order), "webhooks": _webhook_ids(records)})

    @post("/orders/{order_id:int}/refunds")
    async def refund(self, request: Request) -> Response:
        state, order_id = request.app.state, int(request.path_params["order_id"])
        data = await _body(request, RefundRequest)
        if isinstance(data, Response):
            return data
        emu = state.emulator
        try:
            refund, records = storefront.refund(emu.shop, order_id, data)
        except StorefrontError as exc:
            return _failure(exc)
        emu.publish(records)
        return _json(
            {
                "refund": {
                    "id": refund.id,
                    "admin_graphql_api_id": refund.gid,
                    "lines": msgspec.to_builtins(refund.lines),
                },
                "order": emu.shop.order_snapshot(emu.shop.orders[order_id]),
                "webhooks": _webhook_ids(records),
            },
            201,
        )

    @post("/app/uninstall")
    async def uninstall(self, request: Request) -> Response:
        state = request.app.state
        emu = state.emulator
        records = storefront.uninstall(emu.shop)
        emu.publish(records)
        return _json({"webhooks": _webhook_ids(records)})

    @get("/webhooks")
    async def webhooks(self, request: Request) -> Response:
        state = request.app.state
        emu = state.emulator
        snapshot = emu.shop.snapshot()
        return _json(
            {
                "mode": emu.dispatcher.mode,
                "delay_ms": emu.dispatcher.delay_ms,
                "pending_tasks": emu.dispatcher.pending,
                "webhooks": snapshot["webhooks"],
                "attempts": snapshot["webhook_attempts"],
            }
        )

    @post("/webhooks/mode")
    async def mode(self, request: Request) -> Response:
        state = request.app.state
        data = await _body(request, ModeRequest)
        if isinstance(data, Response):
            return data
        dispatcher = state.emulator.dispatcher
        dispatcher.mode = data.mode
        dispatcher.delay_ms = data.delay_ms
        return _json({"mode": dispatcher.mode, "delay_ms": dispatcher.delay_ms})

    @post("/webhooks/config")
    async def webhook_config(self, request: Request) -> Response:
        state = request.app.state
        data = await _body(request, WebhookConfigRequest)
        if isinstance(data, Response):
            return data
        config = state.emulator.config
        if data.url is not msgspec.UNSET:
            config.webhook_url = data.url
        if data.retry_schedule_s is not None:
            config.retry_schedule_s = tuple(data.retry_schedule_s)
        if data.timeout_s is not None:
            config.webhook_timeout_s = data.timeout_s
        if data.api_version is not None:
            config.webhook_api_version = data.api_version
        return _json(
            {
                "url": config.webhook_url,
                "retry_schedule_s": list(config.retry_schedule_s),
                "timeout_s": config.webhook_timeout_s,
                "api_version": config.webhook_api_version,
            }
        )

    @post("/webhooks/flush")
    async def flush(self, request: Request) -> Response:
        state = request.app.state
        data = await _body(request, FlushOptions)
        if isinstance(data, Response):
            return data
        try:
            outcomes = await state.emulator.dispatcher.flush(data)
        except RuntimeError as exc:
            return _json({"error": "no_webhook_url", "message": str(exc)}, 409)
        return _json({"sent": len(outcomes), "outcomes": msgspec.to_builtins(outcomes)})

    @post("/webhooks/drain")
    async def drain(self, request: Request) -> Response:
        state = request.app.state
        data = await _body(request, DrainRequest)
        if isinstance(data, Response):
            return data
        idle = await state.emulator.dispatcher.drain(data.timeout_s)
        return _json({"idle": idle, "pending_tasks": state.emulator.dispatcher.pending})

    @post("/webhooks/send")
    async def send(self, request: Request) -> Response:
        state = request.app.state
        data = await _body(request, SendRequest)
        if isinstance(data, Response):
            return data
        emu = state.emulator
        url = data.url or emu.config.webhook_url
        if not url:
            return _json({"error": "no_webhook_url"}, 409)
        if data.raw_body is not None:
            body = data.raw_body.encode("utf-8")
            try:
                parsed = msgspec.json.decode(body)
            except msgspec.DecodeError:
                parsed = None
        else:
            body = msgspec.json.encode(data.body)
            parsed = data.body
        # Order topics carry X-Shopify-Order-Id / X-Shopify-Test taken from the body.
        fields = parsed if isinstance(parsed, dict) and data.topic.startswith("orders/") else {}
        order_id = data.order_id
        if order_id is None and isinstance(fields.get("id"), int):
            order_id = fields["id"]
        test = data.test
        if test is None and isinstance(fields.get("test"), bool):
            test = fields["test"]
        record = new_record(
            emu.shop,
            data.topic,
            body,
            order_id=order_id,
            test=test,
            synthetic=True,
            shop_domain=data.shop_domain,
            api_version=data.api_version,
        )
        outcome = await emu.dispatcher.send_custom(record, data.sign, url=url)
        return _json(msgspec.to_builtins(outcome))

    @post("/throttle")
    async def throttle(self, request: Request) -> Response:
        state = request.app.state
        data = await _body(request, ThrottleRequest)
        if isinstance(data, Response):
            return data
        edge = state.emulator.edge
        edge.remaining = data.next_429
        edge.retry_after_s = data.retry_after_s
        return _json({"next_429": edge.remaining, "retry_after_s": edge.retry_after_s})

    @post("/bucket")
    async def bucket(self, request: Request) -> Response:
        state = request.app.state
        data = await _body(request, BucketRequest)
        if isinstance(data, Response):
            return data
        emu = state.emulator
        emu.bucket.configure(data.maximum_available, data.restore_rate, data.currently_available)
        if data.single_query_max is not None:
            emu.config.single_query_max = data.single_query_max
        return _json({**emu.bucket.status(), "singleQueryMax": emu.config.single_query_max})
