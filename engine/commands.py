"""Commands: what a caller asks the pool to do. Frozen, keyword-only values.

Each command names the Lua script that carries it out and the JSON object that
script takes as ARGV[6] (see the script's header for the fields).
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec


class Op(msgspec.Struct, frozen=True, kw_only=True):
    """The context of one call: its operation id (the idempotency handle), the
    time (passed in, never read inside), who acts, and, when the caller wants a
    repeat to replay the first result, how long to keep it and the body's
    fingerprint (empty: no body comparison, as for Shopify deliveries)."""

    op_id: str
    now_ms: int
    actor: str
    fingerprint: str = ""
    idempotency_ttl_ms: int = 0


class SkuQty(msgspec.Struct, frozen=True, kw_only=True, array_like=False):
    sku: str
    qty: int


class OrderLineRequest(msgspec.Struct, frozen=True, kw_only=True):
    #: None or "" for a Shopify line that came without a SKU.
    sku: str | None
    qty: int


class ReturnLineRequest(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    qty: int
    restock: bool


class Command(msgspec.Struct, frozen=True, kw_only=True):
    script: ClassVar[str]

    def payload(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


class PlaceOrder(Command, frozen=True, kw_only=True):
    script: ClassVar[str] = "reserve"
    order_id: str
    channel: str
    policy: str
    lines: tuple[OrderLineRequest, ...]
    #: The order's header as JSON text; stored as given and returned on reads.
    doc: str = "{}"
    #: "refuse" (API) or "exception" (Shopify intake keeps unknown SKUs as exceptions).
    unknown_sku: str = "refuse"
    #: Shopify test orders are recorded but reserve nothing.
    test: bool = False


class CancelLine(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Units to cancel on the order's lines of one SKU, or on one line (by
    0-based index: a line whose SKU is missing or malformed)."""

    qty: int
    sku: str | None = None
    line: int | None = None


class CancelOrder(Command, frozen=True, kw_only=True):
    script: ClassVar[str] = "cancel"
    order_id: str
    #: None: the whole unshipped remainder.
    lines: tuple[CancelLine, ...] | None = None


class ShipOrder(Command, frozen=True, kw_only=True):
    script: ClassVar[str] = "ship"
    order_id: str
    #: {id, method, carrier, service, tracking_number, tracking_url, packages, pallets}
    shipment: dict[str, Any]
    lines: tuple[SkuQty, ...]
    #: Extension digit + GS1 company prefix: cartons get SSCCs ("" : none).
    sscc_prefix: str = ""

    def payload(self) -> dict[str, Any]:
        body = msgspec.to_builtins(self)
        body["shipment"] = msgspec.json.encode(self.shipment).decode()
        return body


class CountStock(Command, frozen=True, kw_only=True):
    script: ClassVar[str] = "count"
    sku: str
    on_hand: int
    reason: str = "count"
    expected_on_hand: int | None = None

    def payload(self) -> dict[str, Any]:
        return {"mode": "count", **msgspec.to_builtins(self)}


class AdjustStock(Command, frozen=True, kw_only=True):
    script: ClassVar[str] = "count"
    sku: str
    delta: int
    reason: str

    def payload(self) -> dict[str, Any]:
        return {"mode": "adjust", **msgspec.to_builtins(self)}


class ReceiveStock(Command, frozen=True, kw_only=True):
    script: ClassVar[str] = "receive"
    receipt_id: str
    lines: tuple[SkuQty, ...]
    reference: str | None = None


class ReturnUnits(Command, frozen=True, kw_only=True):
    script: ClassVar[str] = "restock"
    return_id: str
    order_id: str
    lines: tuple[ReturnLineRequest, ...]
    reason: str | None = None


class PutSku(Command, frozen=True, kw_only=True):
    script: ClassVar[str] = "sku_put"
    sku: str
    #: Fields to merge into the SKU's details (None clears one).
    meta: dict[str, Any] = msgspec.field(default_factory=dict)
    dtc_reserve: int | None = None


class FillWaiting(Command, frozen=True, kw_only=True):
    script: ClassVar[str] = "fill"
    sku: str
    #: The operation whose call stopped at the fill limit (its replay lists these fills too).
    parent: str | None = None


class PutRecord(Command, frozen=True, kw_only=True):
    """Writes a record the order path reads (customer, API key); doc None removes it."""

    script: ClassVar[str] = "doc_put"
    kind: str
    id: str
    doc: str | None


class ShopifyRefundLine(msgspec.Struct, frozen=True, kw_only=True):
    #: Shopify's line item id (a string: Shopify's ids pass 2^53).
    li: str
    qty: int
    #: "cancel" | "no_restock" | "return" | "legacy_restock"
    restock_type: str


class ShopifyRefund(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    lines: tuple[ShopifyRefundLine, ...] = ()
    #: Units Shopify put back into its own available, per SKU: [[sku, units], ...].
    restocked: tuple[tuple[str, int], ...] = ()


class ApplyShopifyDelivery(Command, frozen=True, kw_only=True):
    """One verified Shopify webhook delivery, applied atomically with its
    dedupe records (see lua/shopify_webhook.lua for each field)."""

    script: ClassVar[str] = "shopify_webhook"
    topic: str
    #: Dedupe keys of this delivery (topic + event id hash, webhook id, ...).
    keys: tuple[str, ...]
    record_ttl_ms: int
    event_id: str | None = None
    webhook_id: str | None = None
    shopify_order_id: str | None = None
    order_id: str | None = None
    #: orders/create: the order to place (a PlaceOrder payload without the script).
    order: dict[str, Any] | None = None
    #: orders/create: units Shopify sold per SKU: [[sku, units], ...].
    sold: tuple[tuple[str, int], ...] = ()
    #: orders/create: longest time a sale is held back from Shopify before our
    #: 200 for it is known to be sent, milliseconds (api/webhooks.py ends it sooner).
    sale_hold_ms: int = 0
    #: orders/cancelled: cancel the unshipped remainder.
    cancel: bool = False
    refunds: tuple[ShopifyRefund, ...] = ()
    #: For a cancel or refund of an order Redis lacks: "report" (answer
    #: not_found, write nothing) or "pend" (keep it until the order arrives).
    if_missing: str = "report"
