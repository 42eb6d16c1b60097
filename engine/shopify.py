"""Shopify webhooks read as the pool's commands. Pure: no I/O, no clock.

A Shopify order is a sale that already happened: it becomes a DTC order under
``accept`` (what stock cannot cover becomes exception units), its lines never
merged, lines that do not ship left out. A cancel or a refund names the order
by Shopify's id; onhand's order id is derived from it (``shp_<id>``), so a
cancel that arrives before its order needs no lookup to be kept for it.

Besides what onhand must change, each command says what Shopify itself did to
its own ``available`` (units sold, units put back by a restock): the channel
sync needs those movements to never hand back units Shopify sold that onhand
has not seen yet (workers/shopify_sync.py).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec

from engine.commands import ApplyShopifyDelivery, ShopifyRefund, ShopifyRefundLine
from engine.model import MAX_ORDER_LINES, MAX_QTY

ORDERS_CREATE = "orders/create"
ORDERS_CANCELLED = "orders/cancelled"
REFUNDS_CREATE = "refunds/create"
APP_UNINSTALLED = "app/uninstalled"
#: Topics onhand acts on; any other topic is answered 200 and ignored.
TOPICS = frozenset({ORDERS_CREATE, ORDERS_CANCELLED, REFUNDS_CREATE, APP_UNINSTALLED})
#: Restock types that put units back into Shopify's own available.
RESTOCKING = frozenset({"cancel", "return", "legacy_restock"})
#: Longest SKU kept on an exception line (a longer one is cut).
MAX_SKU_CHARS = 255
#: Longest header value kept in a dedupe record (the PostgreSQL columns).
MAX_ID_CHARS = 64


class MalformedPayload(ValueError):
    """Raised when a signed body is not the resource its topic promises."""


# ---------------------------------------------------------------- payloads
# Only the fields onhand reads; everything else in Shopify's bodies is ignored.


class _LineItemRef(msgspec.Struct, kw_only=True):
    sku: str | None = None
    requires_shipping: bool | None = True
    gift_card: bool | None = False


class _LineItem(msgspec.Struct, kw_only=True):
    id: int
    quantity: int = 0
    sku: str | None = None
    price: str | float | None = None
    requires_shipping: bool | None = True
    gift_card: bool | None = False
    # "shopify" when Shopify tracks the variant's stock; null when it does not.
    variant_inventory_management: str | None | msgspec.UnsetType = msgspec.UNSET


class _Address(msgspec.Struct, kw_only=True):
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    phone: str | None = None


class _RefundLine(msgspec.Struct, kw_only=True):
    line_item_id: int
    quantity: int = 0
    restock_type: str | None = None
    location_id: int | None = None
    line_item: _LineItemRef | None = None


class _Refund(msgspec.Struct, kw_only=True):
    id: int
    order_id: int | None = None
    refund_line_items: list[_RefundLine] = []


class _Order(msgspec.Struct, kw_only=True):
    id: int
    name: str | None = None
    currency: str | None = None
    created_at: str | None = None
    test: bool | None = False
    note: str | None = None
    line_items: list[_LineItem] = []
    shipping_address: _Address | None = None
    refunds: list[_Refund] = []


def _decode(body: bytes, shape: type) -> Any:
    try:
        return msgspec.json.decode(body, type=shape)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedPayload(str(exc)) from exc


# ---------------------------------------------------------------- deliveries


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """What the webhook headers say about one delivery."""

    topic: str
    event_id: str | None = None
    webhook_id: str | None = None
    #: X-Shopify-Test: "true" on test orders.
    test: bool = False


def order_id_for(shopify_order_id: int | str) -> str:
    """onhand's id of the order Shopify calls ``shopify_order_id``."""
    return f"shp_{shopify_order_id}"


def dedupe_keys(delivery: Delivery, body: bytes) -> list[str]:
    """The records that make a repeat of this delivery a duplicate: topic +
    event id (shared by every delivery of one merchant action), and webhook id.
    Without either header (never from Shopify) the body's hash stands in."""
    keys = []
    if delivery.event_id:
        digest = hashlib.sha256(f"{delivery.topic}\n{delivery.event_id}".encode()).hexdigest()
        keys.append(f"ev:{digest[:40]}")
    if delivery.webhook_id:
        keys.append(f"wid:{delivery.webhook_id[:100]}")
    if not keys:
        keys.append(f"body:{hashlib.sha256(delivery.topic.encode() + body).hexdigest()[:40]}")
    return keys


def _short(value: str | None) -> str | None:
    return value[:MAX_ID_CHARS] if value else None


def _ships(sku_holder: _LineItem | _LineItemRef | None) -> bool:
    """Lines that do not ship (no shipping, gift cards) are not stock."""
    if sku_holder is None:
        return True
    return sku_holder.requires_shipping is not False and not sku_holder.gift_card


def _sku(raw: str | None) -> str:
    return (raw or "").strip()[:MAX_SKU_CHARS]


def _created_ms(text: str | None, fallback_ms: int) -> int:
    if not text:
        return fallback_ms
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return fallback_ms


def _ship_to(address: _Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    name = address.name or " ".join(p for p in (address.first_name, address.last_name) if p) or None
    return {"name": name, "company": address.company, "address1": address.address1,
            "address2": address.address2, "city": address.city, "province": address.province,
            "zip": address.zip, "country": address.country, "country_code": address.country_code,
            "phone": address.phone}


def _refund(refund: _Refund, location_id: int | None) -> ShopifyRefund:
    """A refund's lines (the shipping ones) and the units Shopify restocked
    at the synced location (a restock elsewhere does not move its available)."""
    lines, restocked = [], {}
    for rl in refund.refund_line_items:
        if rl.quantity < 1 or not _ships(rl.line_item):
            continue
        kind = rl.restock_type or "no_restock"
        lines.append(ShopifyRefundLine(li=str(rl.line_item_id), qty=min(rl.quantity, MAX_QTY),
                                       restock_type=kind[:32]))
        sku = _sku(rl.line_item.sku if rl.line_item else None)
        here = location_id is None or rl.location_id is None or rl.location_id == location_id
        if kind in RESTOCKING and sku and here:
            restocked[sku] = restocked.get(sku, 0) + rl.quantity
    return ShopifyRefund(id=str(refund.id), lines=tuple(lines),
                         restocked=tuple(sorted(restocked.items())))


def order_command(delivery: Delivery, body: bytes, *, received_ms: int, record_ttl_ms: int,
                  sale_hold_ms: int = 0) -> ApplyShopifyDelivery | None:
    """orders/create -> the DTC order to place under ``accept``; None when no
    line ships (nothing to reserve, nothing to record)."""
    order = _decode(body, _Order)
    test = bool(order.test) or delivery.test
    oid = order_id_for(order.id)
    lines, statics, sold = [], [], {}
    for li in order.line_items:
        if li.quantity < 1 or not _ships(li):
            continue
        sku = _sku(li.sku)
        lines.append({"sku": sku or None, "qty": min(li.quantity, MAX_QTY)})
        statics.append({"sku": sku or None, "unit_price": None if li.price is None else str(li.price),
                        "shopify_line_item_id": str(li.id)})
        tracked = li.variant_inventory_management is msgspec.UNSET or (
            li.variant_inventory_management == "shopify")
        if sku and tracked:
            sold[sku] = sold.get(sku, 0) + li.quantity
    if not lines:
        return None
    if len(lines) > MAX_ORDER_LINES:
        raise MalformedPayload(f"an order has at most {MAX_ORDER_LINES} shipping lines")
    header = {
        "id": oid,
        "channel": "dtc",
        "customer_id": None,
        "profile_id": None,
        "po_number": None,
        "payment_terms": None,
        "currency": order.currency,
        "created_at_ms": _created_ms(order.created_at, received_ms),
        "source": "shopify",
        "shopify_order_id": str(order.id),
        "shopify_order_name": order.name,
        "test": test,
        "ship_to": _ship_to(order.shipping_address),
        "notes": order.note,
        "lines": statics,
    }
    return ApplyShopifyDelivery(
        topic=ORDERS_CREATE,
        keys=(*dedupe_keys(delivery, body), f"so:{order.id}"),
        record_ttl_ms=record_ttl_ms,
        event_id=_short(delivery.event_id),
        webhook_id=_short(delivery.webhook_id),
        shopify_order_id=str(order.id),
        order_id=oid,
        order={"order_id": oid, "channel": "dtc", "policy": "accept",
               "doc": msgspec.json.encode(header).decode(), "lines": lines,
               "unknown_sku": "exception", "test": test},
        sold=tuple(sorted((sku, min(units, MAX_QTY)) for sku, units in sold.items())),
        sale_hold_ms=sale_hold_ms,
    )


def cancel_command(delivery: Delivery, body: bytes, *, record_ttl_ms: int,
                   location_id: int | None = None) -> ApplyShopifyDelivery:
    """orders/cancelled -> cancel the unshipped remainder, and apply the
    refunds the cancel made (each at most once, whichever delivery brings it)."""
    order = _decode(body, _Order)
    return ApplyShopifyDelivery(
        topic=ORDERS_CANCELLED,
        keys=tuple(dedupe_keys(delivery, body)),
        record_ttl_ms=record_ttl_ms,
        event_id=_short(delivery.event_id),
        webhook_id=_short(delivery.webhook_id),
        shopify_order_id=str(order.id),
        order_id=order_id_for(order.id),
        cancel=True,
        refunds=tuple(_refund(r, location_id) for r in order.refunds),
    )


def refund_command(delivery: Delivery, body: bytes, *, record_ttl_ms: int,
                   location_id: int | None = None) -> ApplyShopifyDelivery:
    """refunds/create -> per line, by restock type (lua/shopify_webhook.lua)."""
    refund = _decode(body, _Refund)
    if refund.order_id is None:
        raise MalformedPayload("a refund names its order_id")
    return ApplyShopifyDelivery(
        topic=REFUNDS_CREATE,
        keys=tuple(dedupe_keys(delivery, body)),
        record_ttl_ms=record_ttl_ms,
        event_id=_short(delivery.event_id),
        webhook_id=_short(delivery.webhook_id),
        shopify_order_id=str(refund.order_id),
        order_id=order_id_for(refund.order_id),
        refunds=(_refund(refund, location_id),),
    )


def uninstall_command(delivery: Delivery, body: bytes, *, record_ttl_ms: int) -> ApplyShopifyDelivery:
    """app/uninstalled -> stop syncing; every record is kept."""
    return ApplyShopifyDelivery(
        topic=APP_UNINSTALLED,
        keys=tuple(dedupe_keys(delivery, body)),
        record_ttl_ms=record_ttl_ms,
        event_id=_short(delivery.event_id),
        webhook_id=_short(delivery.webhook_id),
    )


def delivery_command(delivery: Delivery, body: bytes, *, received_ms: int, record_ttl_ms: int,
                     location_id: int | None = None,
                     sale_hold_ms: int = 0) -> ApplyShopifyDelivery | None:
    """The command for one delivery; None for a topic onhand does not act on
    or an order with nothing that ships. Raises MalformedPayload."""
    if delivery.topic == ORDERS_CREATE:
        return order_command(delivery, body, received_ms=received_ms, record_ttl_ms=record_ttl_ms,
                             sale_hold_ms=sale_hold_ms)
    if delivery.topic == ORDERS_CANCELLED:
        return cancel_command(delivery, body, record_ttl_ms=record_ttl_ms, location_id=location_id)
    if delivery.topic == REFUNDS_CREATE:
        return refund_command(delivery, body, record_ttl_ms=record_ttl_ms, location_id=location_id)
    if delivery.topic == APP_UNINSTALLED:
        return uninstall_command(delivery, body, record_ttl_ms=record_ttl_ms)
    return None


def numeric_id(value: str | int | None) -> int | None:
    """123 from 123, "123" or "gid://shopify/Location/123"."""
    if value is None:
        return None
    text = str(value).rsplit("/", 1)[-1].split("?", 1)[0]
    return int(text) if text.isdigit() else None
