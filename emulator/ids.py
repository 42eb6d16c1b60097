"""Shopify global ids (`gid://shopify/Type/123`) and the numeric id sequences behind them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_GID = re.compile(r"^gid://shopify/(?P<type>[A-Za-z]+)/(?P<id>\d+)(?:\?(?P<query>.*))?$")

# Starting points taken from the real fixtures so ids have the width Shopify's have
# (several exceed 2^53, which is exactly what trips JavaScript consumers).
ID_BASES: dict[str, int] = {
    "Location": 103_709_376_812,
    "Product": 9_782_123_692_332,
    "ProductVariant": 50_398_373_085_484,
    "InventoryItem": 52_470_000_000_000,
    "InventoryLevel": 160_000_000_000,
    "Order": 6_198_432_301_356,
    "LineItem": 15_514_975_502_636,
    "FulfillmentOrder": 7_300_000_000_000,
    "FulfillmentOrderLineItem": 15_800_000_000_000,
    "Fulfillment": 5_700_000_000_000,
    "Refund": 982_959_849_772,
    "RefundLineItem": 603_169_489_196,
    "OrderTransaction": 7_555_197_403_436,
    "Customer": 8_658_316_394_796,
    "MailingAddress": 10_582_771_663_148,
    "InventoryAdjustmentGroup": 30_000_000_000,
    "Checkout": 38_569_595_142_444,
}


def gid(type_name: str, numeric_id: int, query: str | None = None) -> str:
    base = f"gid://shopify/{type_name}/{numeric_id}"
    return f"{base}?{query}" if query else base


@dataclass(frozen=True)
class ParsedGid:
    type_name: str
    id: int
    query: str | None


def parse_gid(value: str) -> ParsedGid | None:
    """Parse a global id; None when it is not one."""
    m = _GID.match(value or "")
    if m is None:
        return None
    return ParsedGid(m.group("type"), int(m.group("id")), m.group("query"))


def numeric_id(value: str, type_name: str) -> int | None:
    """The numeric id of `value` if it is a gid of `type_name`."""
    parsed = parse_gid(value)
    if parsed is None or parsed.type_name != type_name:
        return None
    return parsed.id


class IdSequences:
    """Monotonic ids per resource type, restarting on reset for reproducible runs."""

    def __init__(self) -> None:
        self._next = dict(ID_BASES)

    def next(self, type_name: str) -> int:
        value = self._next.get(type_name, 1_000_000)
        self._next[type_name] = value + 1
        return value
