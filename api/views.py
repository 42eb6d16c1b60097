"""Domain values -> response bodies. Pure functions of their input, so a replay
of a stored result renders byte for byte the same response."""

from __future__ import annotations

import time
from typing import Any

from api import schemas as s
from engine.model import Inventory, Order, as_list


def rfc3339(ms: int | float | None) -> str:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds
    (``2026-12-04T19:52:39.123Z``); formatted by hand: datetime's
    isoformat took 4% of an order's CPU for its two times. The last
    second's text is kept: an order's times mostly fall in one second,
    and so do the orders of a busy second."""
    global _second
    # a float is first rounded to microseconds, as datetime.fromtimestamp does
    total = ms if isinstance(ms, int) else round((ms or 0) * 1000) // 1000
    whole, milli = divmod(total, 1000)
    second = _second
    if second[0] != whole:
        t = time.gmtime(whole)
        second = _second = (whole, f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
                                   f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.")
    return f"{second[1]}{milli:03d}Z"


#: (epoch second, its text up to the milliseconds) of the last time formatted
_second: tuple[int, str] = (-1, "")


def inventory_view(inv: Inventory) -> s.InventoryView:
    d = inv.details
    return s.InventoryView(
        sku=inv.sku,
        name=d.get("name"),
        upc=d.get("upc"),
        case_pack=d.get("case_pack"),
        on_hand=inv.on_hand,
        reserved=inv.reserved,
        available=inv.available,
        available_to_wholesale=inv.available_to_wholesale,
        backordered=inv.backordered,
        exception=inv.exception,
        reserved_by_channel=s.ByChannel(dtc=inv.reserved_dtc, wholesale=inv.reserved_wholesale),
        backordered_by_channel=s.ByChannel(dtc=inv.backordered_dtc, wholesale=inv.backordered_wholesale),
        dtc_reserve=inv.dtc_reserve,
        shopify_inventory_item_id=d.get("shopify_inventory_item_id"),
    )


def wholesale_inventory_view(inv: Inventory) -> s.WholesaleInventoryView:
    return s.WholesaleInventoryView(sku=inv.sku, name=inv.details.get("name"),
                                    case_pack=inv.details.get("case_pack"),
                                    available_to_wholesale=inv.available_to_wholesale)


def fills_view(fills: list[dict[str, Any]]) -> list[s.Fill]:
    return [s.Fill(sku=f["sku"], order_id=f["order_id"], units=int(f["units"])) for f in as_list(fills)]


def _by_sku(lines: list[dict[str, Any]], *, with_restock: bool = False) -> list:
    totals: dict[tuple, int] = {}
    for line in as_list(lines):
        key = (line["sku"], bool(line.get("restock"))) if with_restock else (line["sku"],)
        totals[key] = totals.get(key, 0) + int(line["quantity"])
    if with_restock:
        return [s.ReturnLineView(sku=k[0], restock=k[1], quantity=q) for k, q in totals.items()]
    return [s.ShipmentLine(sku=k[0], quantity=q) for k, q in totals.items()]


def shipment_view(doc: dict[str, Any]) -> s.ShipmentView:
    return s.ShipmentView(
        id=doc["id"],
        order_id=doc["order_id"],
        lines=_by_sku(doc.get("lines")),
        method=doc.get("method"),
        carrier=doc.get("carrier"),
        service=doc.get("service"),
        tracking_number=doc.get("tracking_number"),
        tracking_url=doc.get("tracking_url"),
        packages=doc.get("packages"),
        pallets=doc.get("pallets"),
        shipped_at=rfc3339(doc.get("shipped_at_ms")),
        bill_of_lading=doc.get("bill_of_lading"),
        weight_lb=doc.get("weight_lb"),
        cartons=[carton_view(c, i) for i, c in enumerate(as_list(doc.get("cartons")), 1)],
        pallet_ssccs=[str(x) for x in as_list(doc.get("pallet_ssccs"))],
    )


def carton_view(doc: dict[str, Any], number: int) -> s.CartonView:
    return s.CartonView(number=int(doc.get("number") or number), sscc=doc.get("sscc"),
                        weight_lb=doc.get("weight_lb"), pallet=doc.get("pallet"),
                        lines=_by_sku(doc.get("lines")))


def return_view(doc: dict[str, Any], fills: list[dict[str, Any]] | None = None) -> s.ReturnView:
    return s.ReturnView(
        id=doc["id"],
        order_id=doc["order_id"],
        reason=doc.get("reason"),
        lines=_by_sku(doc.get("lines"), with_restock=True),
        returned_at=rfc3339(doc.get("returned_at_ms")),
        fills=fills_view(fills or []),
    )


def order_view(order: Order, fills: list[dict[str, Any]] | None = None) -> s.OrderView:
    h = order.header
    statics = h.get("lines") or []
    lines = []
    for i, line in enumerate(order.lines):
        static = statics[i] if i < len(statics) else {}
        lines.append(s.OrderLineView(
            sku=line.sku,
            quantity=line.quantity,
            unit_price=static.get("unit_price"),
            reserved=line.reserved,
            backordered=line.backordered,
            exception=line.exception,
            exception_reason=line.exception_reason,
            shipped=line.shipped,
            cancelled=line.cancelled,
            returned=line.returned,
            shopify_line_item_id=_str(static.get("shopify_line_item_id")),
        ))
    return s.OrderView(
        id=order.id,
        number=order.number,
        channel=order.channel.value,
        status=order.status.value,
        customer_id=h.get("customer_id"),
        profile_id=h.get("profile_id"),
        po_number=h.get("po_number"),
        backorder_policy=order.policy.value,
        payment_terms=h.get("payment_terms"),
        currency=h.get("currency"),
        created_at=rfc3339(h.get("created_at_ms")),
        updated_at=rfc3339(order.updated_at_ms),
        source=h.get("source") or "api",
        ship_to=h.get("ship_to"),
        notes=h.get("notes"),
        shopify_order_id=_str(h.get("shopify_order_id")),
        lines=lines,
        shipments=[shipment_view(doc) for doc in order.shipments],
        returns=[return_view(doc) for doc in order.returns],
        fills=fills_view(fills or []),
    )


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
