"""Customer-facing events, derived from outbox events.

Every accepted change is one outbox event (lua/lib.lua commit()) carrying the
new snapshots of the orders it touched and its ledger movements. From those
alone (no other state) :func:`derive` tells which customer-facing events the
change means, so the events are written in the same PostgreSQL transaction
that applies the change (persistence/notifications.py): an event exists if and
only if its change does.

An event's id is a hash of (merchant, outbox entry id, order id, type): the
same entry applied twice yields the same ids, so nothing is created twice.
Its *position* (outbox entry id, then a rank per type) orders the events of
one order: entry ids grow in the order Redis committed the changes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from engine.model import Order, as_list, order_from_snapshot

ORDER_CREATED = "order.created"
BACKORDER_FILLED = "order.backorder_filled"
ORDER_CANCELLED = "order.cancelled"
ORDER_SHIPPED = "order.shipped"
RETURN_RECEIVED = "return.received"
#: Emitted by the invoicing step of the apply (persistence.notifications.emit).
INVOICE_CREATED = "invoice.created"

#: Every event type, in the order events of one change are sent (the rank).
EVENT_TYPES = (ORDER_CREATED, BACKORDER_FILLED, ORDER_CANCELLED, ORDER_SHIPPED,
               RETURN_RECEIVED, INVOICE_CREATED)
RANK = {t: i for i, t in enumerate(EVENT_TYPES)}


class Notice(msgspec.Struct, kw_only=True, frozen=True):
    """One customer-facing event, as written to notification_events."""

    id: str
    type: str
    #: The outbox entry id ("<ms>-<seq>") of the change: with the rank, the position.
    entry_id: str
    rank: int
    occurred_at_ms: int
    order_id: str | None
    customer_id: str | None
    profile_id: str | None
    po_number: str | None
    #: The event's ``data`` object (see docs/notifications.md).
    payload: dict[str, Any]

    @property
    def entry_ms(self) -> int:
        return entry_position(self.entry_id)[0]

    @property
    def entry_seq(self) -> int:
        return entry_position(self.entry_id)[1]


def entry_position(entry_id: str) -> tuple[int, int]:
    """'1700000000000-3' -> (1700000000000, 3)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def event_id(merchant: str, key: str, order_id: str | None, type_: str) -> str:
    digest = hashlib.sha256(f"{merchant}\n{key}\n{order_id or ''}\n{type_}".encode()).hexdigest()
    return "evt_" + digest[:32]


def order_summary(order: Order) -> dict[str, Any]:
    """What every order event says about the order: who, which PO, where to,
    and each line's state after the change."""
    h = order.header
    return {
        "id": order.id,
        "number": order.number,
        "po_number": h.get("po_number"),
        "customer_id": h.get("customer_id"),
        "profile_id": h.get("profile_id"),
        "channel": order.channel.value,
        "status": order.status.value,
        "backorder_policy": order.policy.value,
        "currency": h.get("currency"),
        "ship_to": h.get("ship_to"),
        "created_at_ms": h.get("created_at_ms"),
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "reserved": line.reserved,
             "backordered": line.backordered, "exception": line.exception,
             "cancelled": line.cancelled, "shipped": line.shipped, "returned": line.returned}
            for line in order.lines
        ],
    }


def _by_sku(rows: list[tuple[str, int]]) -> list[dict[str, Any]]:
    totals: dict[str, int] = {}
    for sku, units in rows:
        totals[sku] = totals.get(sku, 0) + units
    return [{"sku": sku, "units": units} for sku, units in totals.items() if units > 0]


def _shipment(doc: dict[str, Any]) -> dict[str, Any]:
    lines: dict[str, int] = {}
    for line in as_list(doc.get("lines")):
        lines[line["sku"]] = lines.get(line["sku"], 0) + int(line["quantity"])
    return {
        "id": doc["id"], "method": doc.get("method"), "carrier": doc.get("carrier"),
        "service": doc.get("service"), "tracking_number": doc.get("tracking_number"),
        "tracking_url": doc.get("tracking_url"), "packages": doc.get("packages"),
        "pallets": doc.get("pallets"), "shipped_at_ms": doc.get("shipped_at_ms"),
        "lines": [{"sku": sku, "quantity": q} for sku, q in lines.items()],
    }


def _return(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["id"], "reason": doc.get("reason"), "returned_at_ms": doc.get("returned_at_ms"),
            "lines": [{"sku": line["sku"], "quantity": int(line["quantity"]),
                       "restock": bool(line.get("restock"))} for line in as_list(doc.get("lines"))]}


def derive(merchant: str, entry_id: str, event: dict[str, Any]) -> list[Notice]:
    """The customer-facing events one outbox event means, in position order.

    - order.created: an order snapshot at version 1 (reserve, Shopify intake);
      its lines say what was reserved, backordered and cancelled at once.
    - order.backorder_filled: ``fill`` movements of an order (a receipt, a
      release, a return, a count or a lower ring-fence filled it).
    - order.cancelled: ``cancel`` movements, and units a count took back that
      were cancelled (cancel_remainder orders). Lines without a known SKU move
      no counter and have no movement: their cancellation is not reported.
    - order.shipped: the event's shipment.
    - return.received: the event's return(s).
    """
    snaps = {o["id"]: o for o in as_list(event.get("orders"))}
    if not snaps:
        return []
    orders: dict[str, Order] = {}

    def order(oid: str) -> Order | None:
        if oid not in orders and oid in snaps:
            orders[oid] = order_from_snapshot(snaps[oid])
        return orders.get(oid)

    found: list[tuple[str, str, dict[str, Any]]] = []  # (type, order id, extra data)
    for oid, snap in snaps.items():
        if int(snap["v"]) == 1:
            found.append((ORDER_CREATED, oid, {}))
    filled: dict[str, list[tuple[str, int]]] = {}
    cancelled: dict[str, list[tuple[str, int]]] = {}
    counted: dict[str, list[tuple[str, int]]] = {}
    for sku, oid, reason, _doh, _drd, _drw, dbd, dbw, dex, units in as_list(event.get("ledger")):
        if not oid:
            continue
        if reason == "fill":
            filled.setdefault(oid, []).append((sku, int(units)))
        elif reason == "cancel":
            cancelled.setdefault(oid, []).append((sku, int(units)))
        elif reason == "take_back" and dbd + dbw + dex == 0:
            counted.setdefault(oid, []).append((sku, int(units)))
    for oid, rows in filled.items():
        found.append((BACKORDER_FILLED, oid, {"filled": _by_sku(rows)}))
    for oid in sorted(set(cancelled) | set(counted)):
        reason = "cancel" if oid in cancelled else "stock_count"
        rows = cancelled.get(oid, []) + counted.get(oid, [])
        found.append((ORDER_CANCELLED, oid, {"cancelled": _by_sku(rows), "reason": reason}))
    if isinstance(shipment := event.get("shipment"), dict):
        found.append((ORDER_SHIPPED, shipment["order_id"], {"shipment": _shipment(shipment)}))
    for ret in ([event["return"]] if isinstance(event.get("return"), dict) else []) + as_list(event.get("returns")):
        found.append((RETURN_RECEIVED, ret["order_id"], {"return": _return(ret)}))

    out = []
    seen = set()
    for type_, oid, extra in found:
        o = order(oid)
        if o is None or (type_, oid) in seen:
            continue
        seen.add((type_, oid))
        out.append(notice(merchant, type_, entry_id, int(event.get("at") or 0), o, extra))
    out.sort(key=lambda n: (n.rank, n.order_id or ""))
    return out


def notice(merchant: str, type_: str, key: str, occurred_at_ms: int, order: Order | None,
           extra: dict[str, Any], *, customer_id: str | None = None, profile_id: str | None = None,
           po_number: str | None = None) -> Notice:
    """One event about ``order`` (or about no order, with the ids given)."""
    h = order.header if order is not None else {}
    data = ({"order": order_summary(order)} if order is not None else {}) | extra
    return Notice(
        id=event_id(merchant, key, order.id if order else None, type_), type=type_, entry_id=key,
        rank=RANK[type_], occurred_at_ms=occurred_at_ms, order_id=order.id if order else None,
        customer_id=h.get("customer_id") or customer_id, profile_id=h.get("profile_id") or profile_id,
        po_number=h.get("po_number") or po_number, payload=data,
    )
