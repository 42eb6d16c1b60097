"""The emulated shop: catalogue, stock per location, orders, logs and the webhook outbox.

All changes happen on the server's event loop; `lock` lets another thread (a test
reading through the library API) take a consistent snapshot.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from emulator.config import EmulatorConfig
from emulator.idempotency import IdempotencyStore
from emulator.ids import IdSequences, gid
from emulator.ledger import UndeliveredLedger
from emulator.logs import CallRecord, SetLogEntry, UnsupportedField, ValidationFailure
from emulator.model import (
    Fulfillment,
    FulfillmentOrder,
    FulfillmentOrderLineItem,
    InventoryAdjustmentGroup,
    InventoryItem,
    InventoryLevel,
    InventoryPolicy,
    LineItem,
    Location,
    Order,
    Product,
    ProductVariant,
)
from emulator.outbox import Outbox


class SeedProduct(msgspec.Struct, kw_only=True):
    sku: str = ""
    available: int = 0
    title: str | None = None
    price: str = "10.00"
    inventory_policy: InventoryPolicy = "DENY"
    # Stock per location name or id; `available` goes to the first location when absent.
    levels: dict[str, int] | None = None
    vendor: str | None = None
    requires_shipping: bool = True


class Shop:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        try:
            self.tz = ZoneInfo(config.timezone)
        except ZoneInfoNotFoundError:  # no tz database (e.g. Windows without tzdata)
            self.tz = UTC
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.ids = IdSequences()
            self.installed = True
            self.locations: dict[int, Location] = {}
            self.products: dict[int, Product] = {}
            self.variants: dict[int, ProductVariant] = {}
            self.inventory_items: dict[int, InventoryItem] = {}
            self.levels: dict[int, InventoryLevel] = {}
            self._level_index: dict[tuple[int, int], InventoryLevel] = {}
            self.orders: dict[int, Order] = {}
            self.line_items: dict[int, LineItem] = {}
            self.fulfillment_orders: dict[int, FulfillmentOrder] = {}
            self.fulfillment_order_line_items: dict[int, FulfillmentOrderLineItem] = {}
            self.fulfillments: dict[int, Fulfillment] = {}
            self.adjustment_groups: dict[int, InventoryAdjustmentGroup] = {}
            self.next_order_number = 1001
            self.ledger = UndeliveredLedger()
            self.idempotency = IdempotencyStore()
            self.outbox = Outbox()
            self.set_log: list[SetLogEntry] = []
            self.call_log: list[CallRecord] = []
            self.validation_failures: list[ValidationFailure] = []
            self.unsupported_fields: list[UnsupportedField] = []
            for name in self.config.locations:
                self.add_location(name)

    # -- time -------------------------------------------------------------------------

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    @staticmethod
    def clock() -> float:
        return time.time()

    # -- catalogue and stock ----------------------------------------------------------

    def add_location(self, name: str) -> Location:
        with self.lock:
            location = Location(id=self.ids.next("Location"), name=name, created_at=self.now())
            self.locations[location.id] = location
            for item in self.inventory_items.values():
                self._stock(item.id, location.id, 0)
            return location

    @property
    def primary_location(self) -> Location:
        return next(iter(self.locations.values()))

    def location_by_ref(self, ref: str | int) -> Location | None:
        for location in self.locations.values():
            if str(location.id) == str(ref) or location.gid == ref or location.name == ref:
                return location
        return None

    def seed_product(self, spec: SeedProduct) -> ProductVariant:
        with self.lock:
            now = self.now()
            title = spec.title or spec.sku or "Product"
            product = Product(
                id=self.ids.next("Product"),
                title=title,
                vendor=spec.vendor or self.config.shop_name,
                created_at=now,
            )
            item_id = self.ids.next("InventoryItem")
            variant = ProductVariant(
                id=self.ids.next("ProductVariant"),
                product_id=product.id,
                inventory_item_id=item_id,
                sku=spec.sku,
                title="Default Title",
                price=Decimal(spec.price).quantize(Decimal("0.01")),
                inventory_policy=spec.inventory_policy,
                requires_shipping=spec.requires_shipping,
                created_at=now,
                updated_at=now,
            )
            item = InventoryItem(
                id=item_id,
                variant_id=variant.id,
                sku=spec.sku,
                requires_shipping=spec.requires_shipping,
                created_at=now,
                updated_at=now,
            )
            self.products[product.id] = product
            self.variants[variant.id] = variant
            self.inventory_items[item.id] = item
            stock = {loc.id: 0 for loc in self.locations.values()}
            if spec.levels:
                for ref, qty in spec.levels.items():
                    location = self.location_by_ref(ref)
                    if location is None:
                        raise KeyError(f"unknown location {ref!r}")
                    stock[location.id] = qty
            else:
                stock[self.primary_location.id] = spec.available
            for location_id, qty in stock.items():
                self._stock(item.id, location_id, qty)
            return variant

    def _stock(self, item_id: int, location_id: int, available: int) -> InventoryLevel:
        now = self.now()
        level = InventoryLevel(
            id=self.ids.next("InventoryLevel"),
            inventory_item_id=item_id,
            location_id=location_id,
            available=available,
            created_at=now,
            updated_at=now,
        )
        self.levels[level.id] = level
        self._level_index[(item_id, location_id)] = level
        return level

    def level(self, item_id: int, location_id: int) -> InventoryLevel | None:
        return self._level_index.get((item_id, location_id))

    def levels_of(self, item_id: int) -> list[InventoryLevel]:
        return [lv for (i, _), lv in self._level_index.items() if i == item_id]

    def variant_by_sku(self, sku: str) -> ProductVariant | None:
        if not sku:
            return None
        return next((v for v in self.variants.values() if v.sku == sku), None)

    def set_available(self, variant: ProductVariant, available: int, location_id: int) -> None:
        """Direct stock write for test setup; not an API call, so not in the set log."""
        with self.lock:
            level = self.level(variant.inventory_item_id, location_id)
            if level is None:
                level = self._stock(variant.inventory_item_id, location_id, 0)
            level.available = available
            level.updated_at = self.now()

    # -- snapshots --------------------------------------------------------------------

    def inventory_snapshot(self) -> dict[str, Any]:
        per_item = self.ledger.per_item()
        out: dict[str, Any] = {}
        for variant in self.variants.values():
            levels = self.levels_of(variant.inventory_item_id)
            sold, restocked = per_item.get(variant.inventory_item_id, (0, 0))
            key = variant.sku or variant.gid
            out[key] = {
                "sku": variant.sku,
                "variant_id": variant.id,
                "variant_gid": variant.gid,
                "product_id": variant.product_id,
                "inventory_item_id": variant.inventory_item_id,
                "inventory_item_gid": gid("InventoryItem", variant.inventory_item_id),
                "inventory_policy": variant.inventory_policy,
                "price": str(variant.price),
                "available": sum(lv.available for lv in levels),
                "on_hand": sum(lv.on_hand for lv in levels),
                "committed": sum(lv.committed for lv in levels),
                "levels": [
                    {
                        "location_id": lv.location_id,
                        "location_gid": gid("Location", lv.location_id),
                        "inventory_level_gid": lv.gid,
                        "available": lv.available,
                        "on_hand": lv.on_hand,
                        "committed": lv.committed,
                    }
                    for lv in levels
                ],
                "undelivered_sold": sold,
                "undelivered_restocked": restocked,
                "undelivered_sales": sold - restocked,
            }
        return out

    def order_snapshot(self, order: Order) -> dict[str, Any]:
        return {
            "id": order.id,
            "admin_graphql_api_id": order.gid,
            "name": order.name,
            "test": order.test,
            "email": order.email,
            "financial_status": order.financial_status,
            "fulfillment_status": order.fulfillment_status,
            "cancelled_at": order.cancelled_at.isoformat() if order.cancelled_at else None,
            "cancel_reason": order.cancel_reason,
            "line_items": [
                {
                    "id": li.id,
                    "admin_graphql_api_id": li.gid,
                    "sku": li.sku,
                    "variant_id": li.variant_id,
                    "quantity": li.quantity,
                    "current_quantity": li.current_quantity,
                    "fulfilled_quantity": li.fulfilled_quantity,
                    "requires_shipping": li.requires_shipping,
                    "price": str(li.price),
                }
                for li in order.line_items
            ],
            "fulfillment_orders": [
                {
                    "id": fo.id,
                    "admin_graphql_api_id": fo.gid,
                    "status": fo.status,
                    "location_id": fo.location_id,
                    "line_items": [
                        {
                            "id": foli.id,
                            "admin_graphql_api_id": foli.gid,
                            "line_item_id": foli.line_item_id,
                            "total_quantity": foli.total_quantity,
                            "remaining_quantity": foli.remaining_quantity,
                        }
                        for foli in fo.line_items
                    ],
                }
                for fo in (self.fulfillment_orders[i] for i in order.fulfillment_order_ids)
            ],
            "fulfillment_ids": list(order.fulfillment_ids),
            "refunds": [
                {
                    "id": r.id,
                    "restock": r.restock,
                    "lines": [msgspec.to_builtins(line) for line in r.lines],
                }
                for r in order.refunds
            ],
        }

    def fulfillment_snapshot(self, f: Fulfillment) -> dict[str, Any]:
        return {
            "id": f.id,
            "admin_graphql_api_id": f.gid,
            "order_id": f.order_id,
            "name": f.name,
            "status": f.status,
            "location_id": f.location_id,
            "tracking": [msgspec.to_builtins(t) for t in f.tracking],
            "lines": [msgspec.to_builtins(line) for line in f.lines],
            "notify_customer": f.notify_customer,
            "message": f.message,
        }

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "shop": self.config.shop,
                "installed": self.installed,
                "locations": [
                    {"id": loc.id, "admin_graphql_api_id": loc.gid, "name": loc.name}
                    for loc in self.locations.values()
                ],
                "inventory": self.inventory_snapshot(),
                "orders": [self.order_snapshot(o) for o in self.orders.values()],
                "fulfillments": [self.fulfillment_snapshot(f) for f in self.fulfillments.values()],
                "set_log": msgspec.to_builtins(self.set_log),
                "call_log": msgspec.to_builtins(self.call_log),
                "validation_failures": msgspec.to_builtins(self.validation_failures),
                "unsupported_fields": msgspec.to_builtins(self.unsupported_fields),
                "webhooks": [
                    {
                        "webhook_id": r.webhook_id,
                        "event_id": r.event_id,
                        "topic": r.topic,
                        "status": r.status,
                        "order_id": r.order_id,
                        "attempts": r.attempts,
                        "synthetic": r.synthetic,
                        "body": _readable(r.body),
                    }
                    for r in sorted(self.outbox.records.values(), key=lambda r: r.seq)
                ],
                "webhook_attempts": msgspec.to_builtins(self.outbox.attempts),
            }


def _readable(body: bytes) -> Any:
    """A webhook body as JSON when it is JSON (negative tests may send anything)."""
    try:
        return msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        return body.decode("utf-8", "replace")
