"""What customers and staff do on the Shopify side: buy, cancel, refund, uninstall.

Each action changes stock at once, as Shopify does, and returns the webhooks it
triggers; the caller hands them to the dispatcher. Stock bookkeeping:

* checkout: `available` -= qty, `committed` += qty (on_hand unchanged until shipped);
* cancel with restock / refund `cancel`: unshipped units go back: `available` +=,
  `committed` -=;
* cancel without restock / refund `no_restock` of unshipped units: `committed` -=
  (the units leave on_hand, available does not come back);
* refund `return`: shipped units come back: `available` += (and so on_hand);
* `legacy_restock` acts as `cancel` for unshipped units, `return` for shipped ones.
"""

from __future__ import annotations

import secrets
import string
from decimal import Decimal
from typing import Literal

import msgspec

from emulator.ledger import Key
from emulator.model import (
    Customer,
    FulfillmentOrder,
    FulfillmentOrderLineItem,
    LineItem,
    Order,
    ProductVariant,
    Refund,
    RefundLine,
    RestockType,
)
from emulator.outbox import WebhookRecord
from emulator.payloads import (
    PayloadContext,
    encode,
    order_payload,
    refund_payload,
    shop_payload,
)
from emulator.state import Shop
from emulator.webhooks import new_record

CancelReason = Literal["customer", "inventory", "fraud", "declined", "staff", "other"]


class PurchaseLine(msgspec.Struct, kw_only=True):
    sku: str | None = None
    variant_id: int | None = None
    quantity: int = 1


class Purchase(msgspec.Struct, kw_only=True):
    lines: list[PurchaseLine]
    test: bool = False
    email: str | None = None


class Cancel(msgspec.Struct, kw_only=True):
    restock: bool = True
    reason: CancelReason = "customer"


class RefundLineRequest(msgspec.Struct, kw_only=True):
    line_item_id: int
    quantity: int
    restock_type: RestockType = "no_restock"


class RefundRequest(msgspec.Struct, kw_only=True):
    lines: list[RefundLineRequest]
    note: str | None = None


class StorefrontError(Exception):
    def __init__(self, status: int, code: str, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


def payload_context(shop: Shop) -> PayloadContext:
    return PayloadContext(
        shop_domain=shop.config.shop,
        shop_name=shop.config.shop_name,
        shop_id=91_740_864_812,
        currency=shop.config.currency,
        tz=shop.tz,
        primary_location_id=shop.primary_location.id,
        locations_count=len(shop.locations),
    )


def _token(n: int = 32) -> str:
    return secrets.token_hex(n // 2)


def _confirmation() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(9))


def _order_webhook(shop: Shop, topic: str, order: Order) -> WebhookRecord:
    fulfillments = [shop.fulfillments[i] for i in order.fulfillment_ids]
    body = encode(order_payload(order, fulfillments, shop.line_items, payload_context(shop)))
    return new_record(shop, topic, body, order_id=order.id, test=order.test)


# -- checkout ------------------------------------------------------------------------


def purchase(shop: Shop, request: Purchase) -> tuple[Order, list[WebhookRecord]]:
    with shop.lock:
        if not request.lines:
            raise StorefrontError(422, "empty_cart", "a purchase needs at least one line")
        wanted: list[tuple[ProductVariant, int]] = []
        for line in request.lines:
            variant = _variant(shop, line)
            if line.quantity < 1:
                raise StorefrontError(422, "invalid_quantity", "quantity must be at least 1")
            wanted.append((variant, line.quantity))
        demand: dict[int, int] = {}
        for variant, qty in wanted:
            demand[variant.id] = demand.get(variant.id, 0) + qty
        location_id = _pick_location(shop, demand)
        now = shop.now()
        order_id = shop.ids.next("Order")
        email = request.email or f"customer{order_id % 100000}@example.com"
        customer = Customer(
            id=shop.ids.next("Customer"),
            address_id=shop.ids.next("MailingAddress"),
            email=email,
            first_name="Alex",
            last_name="Buyer",
            created_at=now,
        )
        order = Order(
            id=order_id,
            order_number=shop.next_order_number,
            email=email,
            test=request.test,
            currency=shop.config.currency,
            customer=customer,
            line_items=[],
            token=_token(),
            checkout_id=shop.ids.next("Checkout"),
            checkout_token=_token(),
            confirmation_number=_confirmation(),
            created_at=now,
            updated_at=now,
        )
        shop.next_order_number += 1
        sold: dict[Key, int] = {}
        for variant, qty in wanted:
            product = shop.products[variant.product_id]
            li = LineItem(
                id=shop.ids.next("LineItem"),
                order_id=order.id,
                variant_id=variant.id,
                product_id=product.id,
                inventory_item_id=variant.inventory_item_id,
                sku=variant.sku,
                title=product.title,
                vendor=product.vendor,
                quantity=qty,
                price=variant.price,
                grams=variant.grams,
                requires_shipping=variant.requires_shipping,
                taxable=variant.taxable,
            )
            order.line_items.append(li)
            shop.line_items[li.id] = li
            level = shop.level(variant.inventory_item_id, location_id)
            assert level is not None
            level.available -= qty
            level.committed += qty
            level.updated_at = now
            key = (variant.inventory_item_id, location_id)
            sold[key] = sold.get(key, 0) + qty
        shippable = [li for li in order.line_items if li.requires_shipping]
        if shippable:
            fo = FulfillmentOrder(
                id=shop.ids.next("FulfillmentOrder"),
                order_id=order.id,
                location_id=location_id,
                line_items=[],
                created_at=now,
                updated_at=now,
            )
            for li in shippable:
                foli = FulfillmentOrderLineItem(
                    id=shop.ids.next("FulfillmentOrderLineItem"),
                    fulfillment_order_id=fo.id,
                    line_item_id=li.id,
                    inventory_item_id=li.inventory_item_id,
                    total_quantity=li.quantity,
                    remaining_quantity=li.quantity,
                )
                fo.line_items.append(foli)
                shop.fulfillment_order_line_items[foli.id] = foli
            shop.fulfillment_orders[fo.id] = fo
            order.fulfillment_order_ids.append(fo.id)
        shop.orders[order.id] = order
        record = _order_webhook(shop, "orders/create", order)
        shop.ledger.attach(shop.ledger.open("sale", sold), record.webhook_id)
        return order, [record]


def _variant(shop: Shop, line: PurchaseLine) -> ProductVariant:
    if line.variant_id is not None:
        variant = shop.variants.get(line.variant_id)
    elif line.sku:
        variant = shop.variant_by_sku(line.sku)
    else:
        raise StorefrontError(422, "invalid_line", "each line needs a sku or a variant_id")
    if variant is None:
        ref = line.variant_id if line.variant_id is not None else line.sku
        raise StorefrontError(404, "unknown_variant", f"no variant {ref!r}")
    return variant


def _pick_location(shop: Shop, demand: dict[int, int]) -> int:
    """The first location (primary first) that can ship every DENY line in full.

    Shopify's checkout refuses the whole cart when a variant that may not oversell is
    short; variants with policy CONTINUE may go negative.
    """
    shortages: list[dict] = []
    for location in shop.locations.values():
        shortages = []
        for variant_id, qty in demand.items():
            variant = shop.variants[variant_id]
            if variant.inventory_policy == "CONTINUE":
                continue
            level = shop.level(variant.inventory_item_id, location.id)
            available = level.available if level else 0
            if available < qty:
                shortages.append(
                    {
                        "sku": variant.sku,
                        "variant_id": variant.id,
                        "requested": qty,
                        "available": available,
                        "location_id": location.id,
                    }
                )
        if not shortages:
            return location.id
    raise StorefrontError(
        409, "insufficient_inventory", "not enough stock to complete the purchase", shortages
    )


# -- cancel --------------------------------------------------------------------------


def cancel(shop: Shop, order_id: int, request: Cancel) -> tuple[Order, list[WebhookRecord]]:
    with shop.lock:
        order = _order(shop, order_id)
        if order.cancelled_at is not None:
            raise StorefrontError(
                422, "already_cancelled", f"order {order_id} is already cancelled"
            )
        now = shop.now()
        location_of = _location_of_lines(shop, order)
        restock_type: RestockType = "cancel" if request.restock else "no_restock"
        lines = [
            RefundLineRequest(
                line_item_id=li.id, quantity=li.unfulfilled_quantity, restock_type=restock_type
            )
            for li in order.line_items
            if li.unfulfilled_quantity > 0
        ]
        refund, restocked = _apply_refund(shop, order, lines, location_of, note="Order canceled")
        order.cancelled_at = now
        order.cancel_reason = request.reason
        order.closed_at = now
        order.updated_at = now
        for fo_id in order.fulfillment_order_ids:
            fo = shop.fulfillment_orders[fo_id]
            if fo.status in ("OPEN", "IN_PROGRESS", "SCHEDULED", "ON_HOLD"):
                shipped = any(
                    foli.remaining_quantity < foli.total_quantity for foli in fo.line_items
                )
                fo.status = "CLOSED" if shipped else "CANCELLED"
                fo.updated_at = now
        cancelled = _order_webhook(shop, "orders/cancelled", order)
        records = [cancelled]
        refund_record = _refund_webhook(shop, order, refund)
        records.append(refund_record)
        if restocked:
            movement = shop.ledger.open("restock", restocked)
            shop.ledger.attach(movement, cancelled.webhook_id)
            shop.ledger.attach(movement, refund_record.webhook_id)
        return order, records


# -- refund --------------------------------------------------------------------------


def refund(shop: Shop, order_id: int, request: RefundRequest) -> tuple[Refund, list[WebhookRecord]]:
    with shop.lock:
        order = _order(shop, order_id)
        if not request.lines:
            raise StorefrontError(422, "empty_refund", "a refund needs at least one line")
        by_id = {li.id: li for li in order.line_items}
        for line in request.lines:
            li = by_id.get(line.line_item_id)
            if li is None:
                raise StorefrontError(404, "unknown_line_item", f"no line item {line.line_item_id}")
            if line.quantity < 1 or line.quantity > li.current_quantity:
                raise StorefrontError(
                    422,
                    "invalid_quantity",
                    f"line item {li.id} has {li.current_quantity} refundable",
                )
            if line.restock_type == "cancel" and line.quantity > li.unfulfilled_quantity:
                raise StorefrontError(
                    422,
                    "invalid_restock",
                    f"line item {li.id} has {li.unfulfilled_quantity} unshipped",
                )
            if line.restock_type == "return" and line.quantity > li.returnable_quantity:
                raise StorefrontError(
                    422,
                    "invalid_restock",
                    f"line item {li.id} has {li.returnable_quantity} shipped",
                )
        refund_, restocked = _apply_refund(
            shop, order, request.lines, _location_of_lines(shop, order), note=request.note
        )
        order.updated_at = shop.now()
        record = _refund_webhook(shop, order, refund_)
        if restocked:
            shop.ledger.attach(shop.ledger.open("restock", restocked), record.webhook_id)
        return refund_, [record]


def _apply_refund(
    shop: Shop,
    order: Order,
    lines: list[RefundLineRequest],
    location_of: dict[int, int],
    note: str | None,
) -> tuple[Refund, dict[Key, int]]:
    now = shop.now()
    restocked: dict[Key, int] = {}
    refund_lines: list[RefundLine] = []
    amount = Decimal("0.00")
    for req in lines:
        li = shop.line_items[req.line_item_id]
        location_id = location_of.get(li.id, shop.primary_location.id)
        # Returns are shipped units; every other type takes unshipped units first.
        unshipped = (
            0 if req.restock_type == "return" else min(req.quantity, li.unfulfilled_quantity)
        )
        shipped = req.quantity - unshipped
        if unshipped:
            _release_unshipped(shop, li, unshipped, location_id)
        back_to_stock = 0 if req.restock_type == "no_restock" else req.quantity
        li.refunded_unshipped += unshipped
        li.refunded_shipped += shipped
        level = shop.level(li.inventory_item_id, location_id) if li.inventory_item_id else None
        if level is not None and back_to_stock:
            level.available += back_to_stock
            level.updated_at = now
            key = (li.inventory_item_id, location_id)
            restocked[key] = restocked.get(key, 0) + back_to_stock
        subtotal = li.price * req.quantity
        amount += subtotal
        refund_lines.append(
            RefundLine(
                id=shop.ids.next("RefundLineItem"),
                line_item_id=li.id,
                quantity=req.quantity,
                restock_type=req.restock_type,
                location_id=location_id if req.restock_type != "no_restock" else None,
                subtotal=subtotal,
            )
        )
    refund_ = Refund(
        id=shop.ids.next("Refund"),
        order_id=order.id,
        note=note,
        restock=any(r.restock_type != "no_restock" for r in refund_lines),
        lines=refund_lines,
        transaction_id=shop.ids.next("OrderTransaction"),
        amount=amount,
        created_at=now,
    )
    order.refunds.append(refund_)
    remaining = sum(li.current_quantity for li in order.line_items)
    order.financial_status = "refunded" if remaining == 0 else "partially_refunded"
    return refund_, restocked


def _release_unshipped(shop: Shop, li: LineItem, qty: int, location_id: int) -> None:
    """Unshipped units leave committed and their fulfillment order line."""
    level = shop.level(li.inventory_item_id, location_id) if li.inventory_item_id else None
    if level is not None:
        level.committed -= qty
    left = qty
    for foli in shop.fulfillment_order_line_items.values():
        if foli.line_item_id != li.id or not left:
            continue
        take = min(left, foli.remaining_quantity)
        foli.remaining_quantity -= take
        foli.total_quantity -= take
        left -= take
        fo = shop.fulfillment_orders[foli.fulfillment_order_id]
        if all(x.remaining_quantity == 0 for x in fo.line_items) and fo.status in (
            "OPEN",
            "IN_PROGRESS",
        ):
            shipped = any(x.total_quantity > 0 for x in fo.line_items)
            fo.status = "CLOSED" if shipped else "CANCELLED"


def _location_of_lines(shop: Shop, order: Order) -> dict[int, int]:
    out: dict[int, int] = {}
    for fo_id in order.fulfillment_order_ids:
        fo = shop.fulfillment_orders[fo_id]
        for foli in fo.line_items:
            out[foli.line_item_id] = fo.location_id
    return out


def _refund_webhook(shop: Shop, order: Order, refund_: Refund) -> WebhookRecord:
    body = encode(refund_payload(order, refund_, shop.line_items, payload_context(shop)))
    return new_record(shop, "refunds/create", body, order_id=order.id, test=order.test)


def _order(shop: Shop, order_id: int) -> Order:
    order = shop.orders.get(order_id)
    if order is None:
        raise StorefrontError(404, "unknown_order", f"no order {order_id}")
    return order


# -- app lifecycle -------------------------------------------------------------------


def uninstall(shop: Shop) -> list[WebhookRecord]:
    """The merchant removes the app: Shopify revokes the token and says so."""
    with shop.lock:
        shop.installed = False
        body = encode(shop_payload(payload_context(shop), email=f"owner@{shop.config.shop}"))
        return [new_record(shop, "app/uninstalled", body)]
