"""The pool's domain: channels, backorder policies, orders, lines and stock.

Plain values only. The state lives in Redis and changes only through the Lua
scripts; these types are what the scripts' snapshots mean.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

#: Largest quantity anywhere (API.md: quantities are 0 .. 10^9).
MAX_QTY = 10**9
#: Most lines in one order.
MAX_ORDER_LINES = 500
#: Most lines in one receipt.
MAX_RECEIPT_LINES = 5000


class Channel(StrEnum):
    DTC = "dtc"
    WHOLESALE = "wholesale"


class Policy(StrEnum):
    """What happens to the units stock cannot cover when an order arrives."""

    BACKORDER = "backorder"  # reserve what is there, backorder the rest
    SHIP_COMPLETE = "ship_complete"  # as backorder; no shipment until complete
    CANCEL_REMAINDER = "cancel_remainder"  # reserve what is there, cancel the rest
    ALL_OR_NOTHING = "all_or_nothing"  # every line in full or refuse
    ACCEPT = "accept"  # DTC sale already made: the rest are exception units


def default_policy(channel: Channel) -> Policy:
    return Policy.BACKORDER if channel is Channel.WHOLESALE else Policy.ALL_OR_NOTHING


class OrderStatus(StrEnum):
    CANCELLED = "cancelled"
    SHIPPED = "shipped"
    EXCEPTION = "exception"
    PARTIALLY_SHIPPED = "partially_shipped"
    OPEN = "open"


class Line(msgspec.Struct, kw_only=True):
    """One order line's counters: quantity = reserved + backordered +
    exception + shipped + cancelled; returned <= shipped."""

    sku: str | None
    quantity: int
    reserved: int = 0
    backordered: int = 0
    exception: int = 0
    shipped: int = 0
    cancelled: int = 0
    returned: int = 0
    exception_reason: str | None = None
    pooled: bool = True

    @property
    def open_units(self) -> int:
        """Units still to ship or to settle (reserved, backordered, exception)."""
        return self.reserved + self.backordered + self.exception


def order_status(lines: list[Line]) -> OrderStatus:
    """The first that applies: cancelled, shipped, exception, partially_shipped, open."""
    quantity = sum(line.quantity for line in lines)
    cancelled = sum(line.cancelled for line in lines)
    shipped = sum(line.shipped for line in lines)
    open_units = sum(line.open_units for line in lines)
    if cancelled == quantity:
        return OrderStatus.CANCELLED
    if open_units == 0 and shipped > 0:
        return OrderStatus.SHIPPED
    if any(line.exception for line in lines):
        return OrderStatus.EXCEPTION
    if shipped > 0:
        return OrderStatus.PARTIALLY_SHIPPED
    return OrderStatus.OPEN


class Order(msgspec.Struct, kw_only=True):
    """An order as the scripts keep it: the header the API wrote (``header``),
    the counters of each line, and the shipments and returns made so far."""

    id: str
    number: int
    channel: Channel
    policy: Policy
    version: int
    updated_at_ms: int
    header: dict[str, Any]
    lines: list[Line]
    shipments: list[dict[str, Any]]
    returns: list[dict[str, Any]]

    @property
    def status(self) -> OrderStatus:
        return order_status(self.lines)

    @property
    def is_closed(self) -> bool:
        """Nothing reserved, backordered or in exception any more."""
        return all(line.open_units == 0 for line in self.lines)


class Inventory(msgspec.Struct, kw_only=True):
    """A SKU's counters. available = on_hand - reserved, never negative."""

    sku: str
    on_hand: int
    reserved_dtc: int
    reserved_wholesale: int
    backordered_dtc: int
    backordered_wholesale: int
    exception: int
    dtc_reserve: int
    version: int
    details: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def reserved(self) -> int:
        return self.reserved_dtc + self.reserved_wholesale

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def available_to_wholesale(self) -> int:
        return max(0, self.available - self.dtc_reserve)

    @property
    def backordered(self) -> int:
        return self.backordered_dtc + self.backordered_wholesale


def as_list(value: Any) -> list:
    """Lua's cjson writes an empty array as ``{}``; read it back as a list."""
    return value if isinstance(value, list) else []


def line_from_row(row: list[Any]) -> Line:
    sku, qty, res, bo, exc, ship, canc, ret, why, pooled = row
    return Line(
        sku=sku or None,
        quantity=int(qty),
        reserved=int(res),
        backordered=int(bo),
        exception=int(exc),
        shipped=int(ship),
        cancelled=int(canc),
        returned=int(ret),
        exception_reason=why or None,
        pooled=bool(pooled),
    )


def order_from_snapshot(snap: dict[str, Any]) -> Order:
    """Builds an Order from a script's order snapshot (reply or outbox event)."""
    lines = snap["L"]
    if isinstance(lines, str | bytes):
        lines = msgspec.json.decode(lines)
    shipments = snap.get("S") or "[]"
    returns = snap.get("R") or "[]"
    header = snap.get("d") or "{}"
    return Order(
        id=snap["id"],
        number=int(snap["n"]),
        channel=Channel(snap["c"]),
        policy=Policy(snap["p"]),
        version=int(snap["v"]),
        updated_at_ms=int(snap["u"]),
        header=msgspec.json.decode(header) if isinstance(header, str | bytes) else header,
        lines=[line_from_row(row) for row in lines],
        shipments=as_list(msgspec.json.decode(shipments) if isinstance(shipments, str | bytes) else shipments),
        returns=as_list(msgspec.json.decode(returns) if isinstance(returns, str | bytes) else returns),
    )


def inventory_from_snapshot(snap: dict[str, Any]) -> Inventory:
    """Builds Inventory from a script's SKU snapshot or a raw counters hash."""
    details = snap.get("m") or "{}"
    return Inventory(
        sku=snap["sku"],
        on_hand=int(snap["oh"]),
        reserved_dtc=int(snap["rd"]),
        reserved_wholesale=int(snap["rw"]),
        backordered_dtc=int(snap["bd"]),
        backordered_wholesale=int(snap["bw"]),
        exception=int(snap["ex"]),
        dtc_reserve=int(snap["fence"]),
        version=int(snap["v"]),
        details=as_dict(msgspec.json.decode(details) if isinstance(details, str | bytes) else details),
    )


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}
