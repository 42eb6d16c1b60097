"""fulfillmentCreate: ship units of one order's fulfillment orders from one location.

All or nothing. Shipping a unit lowers the fulfillment order line's remaining
quantity and takes the unit out of `committed` (so out of on_hand; available was
already lowered at checkout). A fulfillment order with nothing left is CLOSED.
"""

from __future__ import annotations

from typing import Any

from emulator.ids import numeric_id
from emulator.model import Fulfillment, FulfillmentLine, FulfillmentOrder, TrackingInfo
from emulator.state import Shop

FULFILLABLE = ("OPEN", "IN_PROGRESS")


def _err(field: list[str], message: str) -> dict[str, Any]:
    return {"field": field, "message": message}


def create_fulfillment(
    shop: Shop, fulfillment: dict[str, Any], message: str | None
) -> dict[str, Any]:
    errors: list[dict[str, Any]] = []
    groups = fulfillment.get("lineItemsByFulfillmentOrder") or []
    if not groups:
        errors.append(
            _err(
                ["fulfillment", "lineItemsByFulfillmentOrder"],
                "Line items by fulfillment order can't be blank.",
            )
        )
    plan: list[tuple[FulfillmentOrder, list[tuple[Any, int]]]] = []
    for i, group in enumerate(groups):
        path = ["fulfillment", "lineItemsByFulfillmentOrder", str(i)]
        fo_id = numeric_id(group["fulfillmentOrderId"], "FulfillmentOrder")
        fo = shop.fulfillment_orders.get(fo_id) if fo_id is not None else None
        if fo is None:
            errors.append(_err([*path, "fulfillmentOrderId"], "Fulfillment order does not exist."))
            continue
        if fo.status not in FULFILLABLE:
            errors.append(
                _err(
                    [*path, "fulfillmentOrderId"],
                    f"Fulfillment order {fo.id} has an unfulfillable status= {fo.status.lower()}.",
                )
            )
            continue
        requested = group.get("fulfillmentOrderLineItems")
        lines: list[tuple[Any, int]] = []
        if requested is None:
            # Without line items Shopify ships everything left on the fulfillment order.
            lines = [
                (foli, foli.remaining_quantity)
                for foli in fo.line_items
                if foli.remaining_quantity > 0
            ]
        else:
            by_id = {foli.id: foli for foli in fo.line_items}
            for j, item in enumerate(requested):
                foli_id = numeric_id(item["id"], "FulfillmentOrderLineItem")
                foli = by_id.get(foli_id) if foli_id is not None else None
                if foli is None:
                    errors.append(
                        _err(
                            [*path, "fulfillmentOrderLineItems", str(j), "id"],
                            "Fulfillment order line item does not exist.",
                        )
                    )
                    continue
                qty = item["quantity"]
                if qty <= 0 or qty > foli.remaining_quantity:
                    errors.append(
                        _err(
                            [*path, "fulfillmentOrderLineItems", str(j), "quantity"],
                            "Invalid fulfillment order line item quantity requested.",
                        )
                    )
                    continue
                lines.append((foli, qty))
        plan.append((fo, lines))
    if not errors:
        if len({fo.order_id for fo, _ in plan}) > 1:
            errors.append(
                _err(["fulfillment"], "All fulfillment orders must belong to the same order.")
            )
        elif len({fo.location_id for fo, _ in plan}) > 1:
            errors.append(
                _err(
                    ["fulfillment"], "All fulfillment orders must be assigned to the same location."
                )
            )
        elif not any(lines for _, lines in plan):
            errors.append(_err(["fulfillment"], "Fulfillment must contain at least one line item."))
    if errors:
        return {"fulfillment": None, "userErrors": errors}

    now = shop.now()
    order = shop.orders[plan[0][0].order_id]
    location_id = plan[0][0].location_id
    shipped: list[FulfillmentLine] = []
    for fo, lines in plan:
        for foli, qty in lines:
            foli.remaining_quantity -= qty
            li = shop.line_items[foli.line_item_id]
            li.fulfilled_quantity += qty
            if li.inventory_item_id is not None:
                level = shop.level(li.inventory_item_id, fo.location_id)
                if level is not None:
                    level.committed -= qty
                    level.updated_at = now
            shipped.append(
                FulfillmentLine(
                    fulfillment_order_line_item_id=foli.id, line_item_id=li.id, quantity=qty
                )
            )
        fo.status = (
            "CLOSED" if all(x.remaining_quantity == 0 for x in fo.line_items) else "IN_PROGRESS"
        )
        fo.updated_at = now
    tracking_input = fulfillment.get("trackingInfo") or {}
    tracking = _tracking(tracking_input)
    record = Fulfillment(
        id=shop.ids.next("Fulfillment"),
        order_id=order.id,
        name=f"{order.name}.{len(order.fulfillment_ids) + 1}",
        location_id=location_id,
        tracking=tracking,
        lines=shipped,
        fulfillment_order_ids=[fo.id for fo, _ in plan],
        notify_customer=bool(fulfillment.get("notifyCustomer")),
        message=message,
        created_at=now,
        updated_at=now,
    )
    shop.fulfillments[record.id] = record
    order.fulfillment_ids.append(record.id)
    order.updated_at = now
    return {"fulfillment": record, "userErrors": []}


def _tracking(inp: dict[str, Any]) -> list[TrackingInfo]:
    numbers = list(inp.get("numbers") or [])
    urls = list(inp.get("urls") or [])
    if inp.get("number"):
        numbers.insert(0, inp["number"])
    if inp.get("url"):
        urls.insert(0, inp["url"])
    if not numbers and not urls and not inp.get("company"):
        return []
    count = max(len(numbers), len(urls), 1)
    return [
        TrackingInfo(
            number=numbers[i] if i < len(numbers) else None,
            company=inp.get("company"),
            url=urls[i] if i < len(urls) else None,
        )
        for i in range(count)
    ]
