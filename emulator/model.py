"""The shop's records: catalogue, stock, orders and what happened to them.

Plain mutable msgspec Structs. Each one knows its GraphQL type name so the
executor can resolve interfaces (`Node`) and build its global id.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Literal

import msgspec

from emulator.ids import gid

InventoryPolicy = Literal["DENY", "CONTINUE"]
RestockType = Literal["no_restock", "cancel", "return", "legacy_restock"]

# The quantity names Shopify knows; the emulator tracks available and committed,
# on_hand is their sum and the other states stay at zero.
QUANTITY_NAMES = (
    "available",
    "committed",
    "damaged",
    "incoming",
    "on_hand",
    "quality_control",
    "reserved",
    "safety_stock",
)


class Record(msgspec.Struct, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = ""
    id: int

    @property
    def gid(self) -> str:
        return gid(self.GRAPHQL_TYPE, self.id)


class Location(Record, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = "Location"
    name: str
    is_active: bool = True
    created_at: datetime


class Product(Record, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = "Product"
    title: str
    vendor: str
    created_at: datetime


class ProductVariant(Record, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = "ProductVariant"
    product_id: int
    inventory_item_id: int
    sku: str
    title: str
    price: Decimal
    inventory_policy: InventoryPolicy = "DENY"
    position: int = 1
    grams: int = 0
    requires_shipping: bool = True
    taxable: bool = True
    created_at: datetime
    updated_at: datetime


class InventoryItem(Record, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = "InventoryItem"
    variant_id: int
    sku: str
    tracked: bool = True
    requires_shipping: bool = True
    created_at: datetime
    updated_at: datetime


class InventoryLevel(Record, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = "InventoryLevel"
    inventory_item_id: int
    location_id: int
    available: int = 0
    # Units sold but not yet shipped: Shopify moves them out of available at checkout
    # and out of on_hand when fulfilled.
    committed: int = 0
    created_at: datetime
    updated_at: datetime

    @property
    def gid(self) -> str:
        return gid("InventoryLevel", self.id, f"inventory_item_id={self.inventory_item_id}")

    @property
    def on_hand(self) -> int:
        return self.available + self.committed

    def quantity(self, name: str) -> int:
        if name == "available":
            return self.available
        if name == "committed":
            return self.committed
        if name == "on_hand":
            return self.on_hand
        return 0


class LineItem(Record, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = "LineItem"
    order_id: int
    variant_id: int | None
    product_id: int | None
    inventory_item_id: int | None
    sku: str
    title: str
    variant_title: str | None = None
    vendor: str
    quantity: int
    price: Decimal
    grams: int = 0
    requires_shipping: bool = True
    taxable: bool = True
    gift_card: bool = False
    fulfilled_quantity: int = 0
    # Units taken off the order by refunds and cancels, before and after shipping.
    refunded_unshipped: int = 0
    refunded_shipped: int = 0

    @property
    def current_quantity(self) -> int:
        return self.quantity - self.refunded_unshipped - self.refunded_shipped

    @property
    def unfulfilled_quantity(self) -> int:
        return self.quantity - self.fulfilled_quantity - self.refunded_unshipped

    @property
    def returnable_quantity(self) -> int:
        return self.fulfilled_quantity - self.refunded_shipped

    @property
    def name(self) -> str:
        return f"{self.title} - {self.variant_title}" if self.variant_title else self.title


class FulfillmentOrderLineItem(Record, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = "FulfillmentOrderLineItem"
    fulfillment_order_id: int
    line_item_id: int
    inventory_item_id: int | None
    total_quantity: int
    remaining_quantity: int


FulfillmentOrderStatus = Literal[
    "OPEN", "IN_PROGRESS", "CANCELLED", "INCOMPLETE", "CLOSED", "SCHEDULED", "ON_HOLD"
]


class FulfillmentOrder(Record, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = "FulfillmentOrder"
    order_id: int
    location_id: int
    status: FulfillmentOrderStatus = "OPEN"
    line_items: list[FulfillmentOrderLineItem]
    created_at: datetime
    updated_at: datetime


class TrackingInfo(msgspec.Struct, kw_only=True):
    number: str | None = None
    company: str | None = None
    url: str | None = None


class FulfillmentLine(msgspec.Struct, kw_only=True):
    fulfillment_order_line_item_id: int
    line_item_id: int
    quantity: int


class Fulfillment(Record, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = "Fulfillment"
    order_id: int
    name: str
    location_id: int
    status: Literal["SUCCESS", "CANCELLED", "ERROR", "FAILURE"] = "SUCCESS"
    tracking: list[TrackingInfo]
    lines: list[FulfillmentLine]
    fulfillment_order_ids: list[int]
    notify_customer: bool = False
    message: str | None = None
    created_at: datetime
    updated_at: datetime


class RefundLine(msgspec.Struct, kw_only=True):
    id: int
    line_item_id: int
    quantity: int
    restock_type: RestockType
    location_id: int | None
    subtotal: Decimal


class Refund(Record, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = "Refund"
    order_id: int
    note: str | None
    restock: bool
    lines: list[RefundLine]
    transaction_id: int
    amount: Decimal
    created_at: datetime


class Customer(msgspec.Struct, kw_only=True):
    id: int
    address_id: int
    email: str
    first_name: str
    last_name: str
    created_at: datetime


class Order(Record, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = "Order"
    order_number: int
    email: str
    test: bool
    currency: str
    customer: Customer
    line_items: list[LineItem]
    fulfillment_order_ids: list[int] = msgspec.field(default_factory=list)
    fulfillment_ids: list[int] = msgspec.field(default_factory=list)
    refunds: list[Refund] = msgspec.field(default_factory=list)
    token: str
    checkout_id: int
    checkout_token: str
    confirmation_number: str
    financial_status: str = "paid"
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    closed_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return f"#{self.order_number}"

    @property
    def number(self) -> int:
        # Shopify's `number` is the order number without the shop's starting offset (1000).
        return self.order_number - 1000

    @property
    def fulfillment_status(self) -> str | None:
        shipped = sum(li.fulfilled_quantity for li in self.line_items)
        if shipped == 0:
            return None
        if all(li.unfulfilled_quantity == 0 for li in self.line_items):
            return "fulfilled"
        return "partial"


class InventoryChange(msgspec.Struct, kw_only=True):
    name: str
    delta: int
    quantity_after_change: int | None
    inventory_item_id: int
    location_id: int
    ledger_document_uri: str | None = None


class InventoryAdjustmentGroup(Record, kw_only=True):
    GRAPHQL_TYPE: ClassVar[str] = "InventoryAdjustmentGroup"
    reason: str
    reference_document_uri: str | None
    changes: list[InventoryChange]
    created_at: datetime
