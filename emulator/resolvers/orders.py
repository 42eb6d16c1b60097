"""Orders, line items, fulfillment orders, fulfillments and refunds."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from graphql import GraphQLResolveInfo

from emulator.ids import gid
from emulator.model import Order
from emulator.resolvers.core import graphql_datetime, money_bag, resolves, shop_of
from emulator.resolvers.paging import connection


@resolves("Order", "lineItems")
def _order_lines(order: Order, _: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    return connection(order.line_items, **args)


@resolves("Order", "fulfillmentOrders")
def _order_fulfillment_orders(
    order: Order, info: GraphQLResolveInfo, **args: Any
) -> dict[str, Any]:
    shop = shop_of(info)
    rows = [shop.fulfillment_orders[i] for i in order.fulfillment_order_ids]
    if args.get("displayable"):
        rows = [fo for fo in rows if fo.status not in ("CANCELLED", "INCOMPLETE", "CLOSED")]
    return connection(rows, **args)


@resolves("Order", "fulfillments")
def _order_fulfillments(
    order: Order, info: GraphQLResolveInfo, first: int | None = None, **_: Any
) -> list[Any]:
    rows = [shop_of(info).fulfillments[i] for i in order.fulfillment_ids]
    return rows[:first] if first is not None else rows


@resolves("Order", "refunds")
def _order_refunds(order: Order, _: GraphQLResolveInfo, first: int | None = None) -> list[Any]:
    return order.refunds[:first] if first is not None else list(order.refunds)


@resolves("Order", "processedAt")
def _order_processed(order: Order, _: GraphQLResolveInfo) -> str:
    return graphql_datetime(order.created_at)


@resolves("Order", "closed")
def _order_closed(order: Order, _: GraphQLResolveInfo) -> bool:
    return order.closed_at is not None


@resolves("Order", "cancelReason")
def _order_cancel_reason(order: Order, _: GraphQLResolveInfo) -> str | None:
    return order.cancel_reason.upper() if order.cancel_reason else None


@resolves("Order", "currencyCode", "presentmentCurrencyCode")
def _order_currency(order: Order, _: GraphQLResolveInfo) -> str:
    return order.currency


@resolves("Order", "displayFinancialStatus")
def _order_financial(order: Order, _: GraphQLResolveInfo) -> str:
    return order.financial_status.upper()


@resolves("Order", "displayFulfillmentStatus")
def _order_fulfillment_status(order: Order, _: GraphQLResolveInfo) -> str:
    status = order.fulfillment_status
    return {"fulfilled": "FULFILLED", "partial": "PARTIALLY_FULFILLED"}.get(
        status or "", "UNFULFILLED"
    )


@resolves("Order", "sourceName")
def _order_source(*_: Any) -> str:
    return "web"


@resolves("Order", "tags")
def _order_tags(*_: Any) -> list[str]:
    return []


@resolves("Order", "requiresShipping")
def _order_requires_shipping(order: Order, _: GraphQLResolveInfo) -> bool:
    return any(li.requires_shipping for li in order.line_items)


@resolves("Order", "fullyPaid", "confirmed")
def _order_true(*_: Any) -> bool:
    return True


@resolves("Order", "unpaid")
def _order_unpaid(*_: Any) -> bool:
    return False


@resolves("Order", "subtotalLineItemsQuantity")
def _order_quantity(order: Order, _: GraphQLResolveInfo) -> int:
    return sum(li.quantity for li in order.line_items)


@resolves("Order", "currentSubtotalLineItemsQuantity")
def _order_current_quantity(order: Order, _: GraphQLResolveInfo) -> int:
    return sum(li.current_quantity for li in order.line_items)


@resolves("Order", "totalPriceSet", "subtotalPriceSet", "originalTotalPriceSet")
def _order_total(order: Order, _: GraphQLResolveInfo) -> dict[str, Any]:
    return money_bag(
        sum((li.price * li.quantity for li in order.line_items), Decimal(0)), order.currency
    )


@resolves("Order", "currentTotalPriceSet", "currentSubtotalPriceSet")
def _order_current_total(order: Order, _: GraphQLResolveInfo) -> dict[str, Any]:
    return money_bag(
        sum((li.price * li.current_quantity for li in order.line_items), Decimal(0)), order.currency
    )


@resolves("Order", "customer")
def _order_customer(order: Order, _: GraphQLResolveInfo) -> dict[str, Any]:
    c = order.customer
    return {
        "__typename": "Customer",
        "id": gid("Customer", c.id),
        "email": c.email,
        "firstName": c.first_name,
        "lastName": c.last_name,
        "displayName": f"{c.first_name} {c.last_name}".strip(),
    }


@resolves("LineItem", "variant")
def _line_variant(li: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).variants.get(li.variant_id) if li.variant_id else None


@resolves("LineItem", "product")
def _line_product(li: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).products.get(li.product_id) if li.product_id else None


@resolves("LineItem", "isGiftCard")
def _line_gift_card(li: Any, _: GraphQLResolveInfo) -> bool:
    return li.gift_card


@resolves("LineItem", "refundableQuantity")
def _line_refundable(li: Any, _: GraphQLResolveInfo) -> int:
    return li.current_quantity


@resolves("LineItem", "nonFulfillableQuantity")
def _line_non_fulfillable(li: Any, _: GraphQLResolveInfo) -> int:
    return li.refunded_unshipped


@resolves("LineItem", "restockable")
def _line_restockable(li: Any, _: GraphQLResolveInfo) -> bool:
    return li.current_quantity > 0


@resolves(
    "LineItem",
    "originalUnitPriceSet",
    "discountedUnitPriceSet",
    "discountedUnitPriceAfterAllDiscountsSet",
)
def _line_unit_price(li: Any, info: GraphQLResolveInfo, **_: Any) -> dict[str, Any]:
    return money_bag(li.price, shop_of(info).config.currency)


@resolves("LineItem", "originalTotalSet", "discountedTotalSet")
def _line_total(li: Any, info: GraphQLResolveInfo, **_: Any) -> dict[str, Any]:
    return money_bag(li.price * li.quantity, shop_of(info).config.currency)


@resolves("LineItem", "customAttributes", "discountAllocations", "duties")
@resolves("FulfillmentOrder", "fulfillmentHolds")
@resolves("FulfillmentOrderLineItem", "warnings", "financialSummaries")
def _empty(*_: Any, **__: Any) -> list[Any]:
    return []


@resolves("FulfillmentOrder", "lineItems")
def _fo_lines(fo: Any, _: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    return connection(fo.line_items, **args)


@resolves("FulfillmentOrder", "order")
def _fo_order(fo: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).orders[fo.order_id]


@resolves("FulfillmentOrder", "orderId")
def _fo_order_id(fo: Any, _: GraphQLResolveInfo) -> str:
    return gid("Order", fo.order_id)


@resolves("FulfillmentOrder", "orderName")
def _fo_order_name(fo: Any, info: GraphQLResolveInfo) -> str:
    return shop_of(info).orders[fo.order_id].name


@resolves("FulfillmentOrder", "orderProcessedAt")
def _fo_processed(fo: Any, info: GraphQLResolveInfo) -> str:
    return graphql_datetime(shop_of(info).orders[fo.order_id].created_at)


@resolves("FulfillmentOrder", "assignedLocation")
def _fo_location(fo: Any, info: GraphQLResolveInfo) -> dict[str, Any]:
    location = shop_of(info).locations[fo.location_id]
    return {
        "location": location,
        "name": location.name,
        "address1": None,
        "address2": None,
        "city": None,
        "countryCode": "CA",
        "phone": None,
        "province": None,
        "zip": None,
    }


@resolves("FulfillmentOrder", "requestStatus")
def _fo_request_status(*_: Any) -> str:
    return "UNSUBMITTED"


@resolves("FulfillmentOrder", "supportedActions")
def _fo_actions(fo: Any, _: GraphQLResolveInfo) -> list[dict[str, Any]]:
    if fo.status in ("OPEN", "IN_PROGRESS"):
        return [
            {"action": "CREATE_FULFILLMENT", "externalUrl": None},
            {"action": "HOLD", "externalUrl": None},
        ]
    return []


@resolves("FulfillmentOrder", "fulfillments")
def _fo_fulfillments(fo: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    rows = [f for f in shop_of(info).fulfillments.values() if fo.id in f.fulfillment_order_ids]
    return connection(rows, **args)


@resolves("FulfillmentOrderLineItem", "lineItem")
def _foli_line(foli: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).line_items[foli.line_item_id]


@resolves("FulfillmentOrderLineItem", "sku")
def _foli_sku(foli: Any, info: GraphQLResolveInfo) -> str:
    return shop_of(info).line_items[foli.line_item_id].sku


@resolves("FulfillmentOrderLineItem", "inventoryItemId")
def _foli_item(foli: Any, _: GraphQLResolveInfo) -> str | None:
    return gid("InventoryItem", foli.inventory_item_id) if foli.inventory_item_id else None


@resolves("FulfillmentOrderLineItem", "variant")
def _foli_variant(foli: Any, info: GraphQLResolveInfo) -> Any:
    return _line_variant(shop_of(info).line_items[foli.line_item_id], info)


@resolves("FulfillmentOrderLineItem", "productTitle")
def _foli_title(foli: Any, info: GraphQLResolveInfo) -> str:
    return shop_of(info).line_items[foli.line_item_id].title


@resolves("FulfillmentOrderLineItem", "requiresShipping")
def _foli_requires_shipping(foli: Any, info: GraphQLResolveInfo) -> bool:
    return shop_of(info).line_items[foli.line_item_id].requires_shipping


@resolves("Fulfillment", "trackingInfo")
def _fulfillment_tracking(f: Any, _: GraphQLResolveInfo, first: int | None = None) -> list[Any]:
    return f.tracking[:first] if first is not None else list(f.tracking)


@resolves("Fulfillment", "order")
def _fulfillment_order_of(f: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).orders[f.order_id]


@resolves("Fulfillment", "location")
def _fulfillment_location(f: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).locations.get(f.location_id)


@resolves("Fulfillment", "totalQuantity")
def _fulfillment_quantity(f: Any, _: GraphQLResolveInfo) -> int:
    return sum(line.quantity for line in f.lines)


@resolves("Fulfillment", "requiresShipping")
def _fulfillment_requires_shipping(*_: Any) -> bool:
    return True


@resolves("Fulfillment", "displayStatus")
def _fulfillment_display(f: Any, _: GraphQLResolveInfo) -> str:
    return "FULFILLED" if f.status == "SUCCESS" else f.status


@resolves("Fulfillment", "fulfillmentLineItems")
def _fulfillment_lines(f: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    shop = shop_of(info)
    rows = [
        {
            "__typename": "FulfillmentLineItem",
            "id": line.fulfillment_order_line_item_id,
            "lineItem": shop.line_items[line.line_item_id],
            "quantity": line.quantity,
        }
        for line in f.lines
    ]
    return connection(rows, **args)


@resolves("FulfillmentLineItem", "id")
def _fulfillment_line_id(row: dict[str, Any], _: GraphQLResolveInfo) -> str:
    return gid("FulfillmentLineItem", row["id"])


@resolves("Fulfillment", "fulfillmentOrders")
def _fulfillment_fos(f: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    shop = shop_of(info)
    return connection([shop.fulfillment_orders[i] for i in f.fulfillment_order_ids], **args)


@resolves("Refund", "refundLineItems")
def _refund_lines(refund: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    shop = shop_of(info)
    rows = [
        {
            "__typename": "RefundLineItem",
            "id": line.id,
            "lineItem": shop.line_items[line.line_item_id],
            "quantity": line.quantity,
            "restockType": line.restock_type.upper(),
            "restocked": line.restock_type != "no_restock",
            "location": shop.locations.get(line.location_id) if line.location_id else None,
        }
        for line in refund.lines
    ]
    return connection(rows, **args)


@resolves("RefundLineItem", "id")
def _refund_line_id(row: dict[str, Any], _: GraphQLResolveInfo) -> str:
    return gid("RefundLineItem", row["id"])


@resolves("Refund", "totalRefundedSet")
def _refund_total(refund: Any, info: GraphQLResolveInfo) -> dict[str, Any]:
    return money_bag(refund.amount, shop_of(info).config.currency)
