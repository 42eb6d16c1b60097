"""Request and response bodies (msgspec Structs). Requests reject unknown
fields; the constraints here are the contract's (API.md, Conventions)."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import Meta

T = TypeVar("T")

# ------------------------------------------------------------------ scalars

Sku = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
                          description="1-64 letters, digits and -_. not starting with .")]
Qty = Annotated[int, Meta(ge=1, le=10**9)]
Count = Annotated[int, Meta(ge=0, le=10**9)]
Delta = Annotated[int, Meta(ge=-(10**9), le=10**9)]
Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Money = Annotated[str, Meta(pattern=r"^-?\d{1,12}(\.\d{1,4})?$", description='decimal string, e.g. "86.40"')]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217")]
ShortText = Annotated[str, Meta(max_length=255)]
Reference = Annotated[str, Meta(min_length=1, max_length=128)]
Policy = Literal["backorder", "ship_complete", "cancel_remainder", "all_or_nothing", "accept"]
Channel = Literal["dtc", "wholesale"]
Terms = Literal["prepaid", "net_15", "net_30", "net_60", "net_90"]
StockReason = Literal["count", "damage", "found", "other"]
Role = Literal["admin", "operator", "wholesale"]
EmailKind = Literal["order_confirmation", "shipment_notice", "backorder_filled"]
#: One plain address (no spaces, control characters or angle brackets: they
#: would forge mail headers); written without \s, which JSON Schema and
#: Python read differently.
Email = Annotated[str, Meta(max_length=255, pattern=r"^[^@\x00-\x20<>]+@[^@\x00-\x20<>]+$")]


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Base of request bodies: unknown fields are a validation error."""


async def strict_body(request, body_type: type[T], *, optional: bool = False) -> T | None:
    """Decodes the raw request body as ``body_type`` in strict mode.

    Litestar converts bodies leniently ("1" would pass as 1); the contract
    says a field of the wrong type is a 400, so handlers read their body
    through this (Litestar has already checked the shape for the OpenAPI
    document and the size limit)."""
    from api.problems import VALIDATION, ApiProblem

    raw = await request.body()
    if optional and raw.strip() in (b"", b"null"):
        return None
    try:
        if b"\\u0000" not in raw:
            # the common case in one pass (a body with no NUL escape; the
            # profile of an order at full rate had the slow path at 3%)
            try:
                return msgspec.json.decode(raw, type=body_type, strict=True)
            except msgspec.ValidationError:
                pass  # perhaps 5.0 for an integer: the path below decides
        # JSON Schema counts 5.0 as an integer; strings never are numbers
        return msgspec.convert(_integral(msgspec.json.decode(raw)), type=body_type, strict=True)
    except _NulInText as exc:
        raise ApiProblem(VALIDATION, "text must not contain NUL characters",
                         errors=[{"field": str(exc), "message": "contains \\u0000"}]) from exc
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = message.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in message else "body"
        raise ApiProblem(VALIDATION, message, errors=[{"field": field, "message": message}]) from exc
    except msgspec.DecodeError as exc:
        raise ApiProblem(VALIDATION, f"malformed JSON: {exc}",
                         errors=[{"field": "body", "message": str(exc)}]) from exc


class _NulInText(ValueError):
    """Raised for a string holding NUL: PostgreSQL text and jsonb cannot."""


def _integral(value, path: str = "$"):
    """Integral floats (5.0) become ints, recursively; strings with NUL are
    refused (they could be accepted in Redis and then never reach
    PostgreSQL); other values stay."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise _NulInText(path)
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if "\x00" in k:
                raise _NulInText(path)
            out[k] = _integral(v, f"{path}.{k}")
        return out
    if isinstance(value, list):
        return [_integral(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


# ------------------------------------------------------------------ requests


class Address(Body, kw_only=True):
    name: ShortText | None = None
    company: ShortText | None = None
    address1: ShortText | None = None
    address2: ShortText | None = None
    city: ShortText | None = None
    province: ShortText | None = None
    zip: Annotated[str, Meta(max_length=32)] | None = None
    country: ShortText | None = None
    country_code: Annotated[str, Meta(max_length=2)] | None = None
    phone: Annotated[str, Meta(max_length=64)] | None = None


class PutSkuBody(Body, kw_only=True):
    name: ShortText | None = None
    upc: Annotated[str, Meta(max_length=64)] | None = None
    case_pack: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    dtc_reserve: Count | None = None
    shopify_inventory_item_id: Annotated[str, Meta(max_length=128)] | None = None


class AdjustmentBody(Body, kw_only=True):
    delta: Delta
    reason: StockReason


class CountBody(Body, kw_only=True):
    on_hand: Count
    reason: StockReason
    expected_on_hand: Count | None = None


class SkuQtyBody(Body, kw_only=True):
    sku: Sku
    quantity: Qty


class ReceiptBody(Body, kw_only=True):
    reference: Reference | None = None
    lines: Annotated[list[SkuQtyBody], Meta(min_length=1, max_length=5000)]


class ProfileBody(Body, kw_only=True):
    channel: Channel
    payment_terms: Terms | None = None
    backorder_policy: Policy | None = None
    shopify_customer_id: Annotated[str, Meta(max_length=32)] | None = None
    ship_to: Address | None = None
    #: The contact for this profile's emails (default: the customer's email).
    email: Email | None = None
    #: The emails this profile opted in to (none by default).
    email_notifications: Annotated[list[EmailKind], Meta(max_length=3)] | None = None


class CustomerBody(Body, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=255)]
    email: Annotated[str, Meta(max_length=255)] | None = None
    phone: Annotated[str, Meta(max_length=64)] | None = None
    profiles: Annotated[list[ProfileBody], Meta(min_length=1, max_length=20)]


class OrderLineBody(Body, kw_only=True):
    sku: Sku
    quantity: Qty
    unit_price: Money | None = None


class OrderBody(Body, kw_only=True):
    channel: Channel
    customer_id: Id | None = None
    profile_id: Id | None = None
    po_number: Reference | None = None
    backorder_policy: Policy | None = None
    currency: Currency | None = None
    ship_to: Address | None = None
    notes: Annotated[str, Meta(max_length=2000)] | None = None
    lines: Annotated[list[OrderLineBody], Meta(min_length=1, max_length=500)]


class CancelBody(Body, kw_only=True):
    lines: Annotated[list[SkuQtyBody], Meta(min_length=1, max_length=500)] | None = None


class ShipmentBody(Body, kw_only=True):
    lines: Annotated[list[SkuQtyBody], Meta(min_length=1, max_length=500)]
    method: Literal["parcel", "freight"]
    carrier: ShortText | None = None
    service: ShortText | None = None
    tracking_number: Annotated[str, Meta(max_length=128)] | None = None
    tracking_url: Annotated[str, Meta(max_length=2048)] | None = None
    packages: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    pallets: Annotated[int, Meta(ge=1, le=100_000)] | None = None


class ReturnLineBody(Body, kw_only=True):
    sku: Sku
    quantity: Qty
    restock: bool


class ReturnBody(Body, kw_only=True):
    order_id: Id
    reason: Annotated[str, Meta(max_length=500)] | None = None
    lines: Annotated[list[ReturnLineBody], Meta(min_length=1, max_length=500)]


class ApiKeyBody(Body, kw_only=True):
    role: Role
    customer_id: Id | None = None
    name: ShortText | None = None


# ------------------------------------------------------------------ responses


class View(msgspec.Struct, kw_only=True):
    """Base of response bodies."""


class ByChannel(View, kw_only=True):
    dtc: int
    wholesale: int


class InventoryView(View, kw_only=True, omit_defaults=True, tag_field="view", tag="full"):
    sku: str
    name: str | None = None
    upc: str | None = None
    case_pack: int | None = None
    on_hand: int
    reserved: int
    available: int
    available_to_wholesale: int
    backordered: int
    exception: int
    reserved_by_channel: ByChannel
    backordered_by_channel: ByChannel
    dtc_reserve: int
    shopify_inventory_item_id: str | None = None
    #: Orders that got units because this change raised what they may take.
    fills: list["Fill"] = []


class WholesaleInventoryView(View, kw_only=True, tag_field="view", tag="wholesale"):
    """What a wholesale key sees of a SKU: what it may order."""

    sku: str
    name: str | None = None
    case_pack: int | None = None
    available_to_wholesale: int


class InventoryList(View, kw_only=True):
    items: list[InventoryView | WholesaleInventoryView]
    total: int | None = None


class Fill(View, kw_only=True):
    sku: str
    order_id: str
    units: int


class TakenBack(View, kw_only=True):
    order_id: str
    sku: str
    units: int
    became: str


class StockChange(View, kw_only=True):
    """A count, adjustment or SKU change: the new counters and which orders
    gained (fills) or lost (taken_back) units."""

    inventory: InventoryView
    taken_back: list[TakenBack] = []
    fills: list[Fill] = []


class ReceiptLine(View, kw_only=True):
    sku: str
    quantity: int


class ReceiptView(View, kw_only=True):
    id: str
    reference: str | None
    lines: list[ReceiptLine]
    received_at: str
    fills: list[Fill] = []


class OrderLineView(View, kw_only=True):
    sku: str | None
    quantity: int
    unit_price: str | None = None
    reserved: int
    backordered: int
    exception: int
    exception_reason: str | None = None
    shipped: int
    cancelled: int
    returned: int
    shopify_line_item_id: str | None = None


class ShipmentLine(View, kw_only=True):
    sku: str
    quantity: int


class ShipmentView(View, kw_only=True):
    id: str
    order_id: str
    lines: list[ShipmentLine]
    method: str | None = None
    carrier: str | None = None
    service: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    packages: int | None = None
    pallets: int | None = None
    shipped_at: str


class ReturnLineView(View, kw_only=True):
    sku: str
    quantity: int
    restock: bool


class ReturnView(View, kw_only=True):
    id: str
    order_id: str
    reason: str | None = None
    lines: list[ReturnLineView]
    returned_at: str
    fills: list[Fill] = []


class OrderView(View, kw_only=True):
    id: str
    number: int
    channel: str
    status: str
    customer_id: str | None = None
    profile_id: str | None = None
    po_number: str | None = None
    backorder_policy: str
    payment_terms: str | None = None
    currency: str | None = None
    created_at: str
    updated_at: str
    source: str
    ship_to: dict | None = None
    notes: str | None = None
    shopify_order_id: str | None = None
    lines: list[OrderLineView]
    shipments: list[ShipmentView]
    returns: list[ReturnView] = []
    fills: list[Fill] = []


class OrderList(View, kw_only=True):
    items: list[OrderView]
    total: int


class ProfileView(View, kw_only=True):
    id: str
    channel: str
    payment_terms: str | None = None
    backorder_policy: str | None = None
    shopify_customer_id: str | None = None
    ship_to: dict | None = None
    email: str | None = None
    email_notifications: list[str] = []


class CustomerView(View, kw_only=True):
    id: str
    name: str
    email: str | None = None
    phone: str | None = None
    profiles: list[ProfileView]
    created_at: str


class CustomerList(View, kw_only=True):
    items: list[CustomerView]
    total: int


class ApiKeyView(View, kw_only=True):
    id: str
    role: str
    customer_id: str | None = None
    name: str | None = None
    created_at: str


class ApiKeyCreated(ApiKeyView, kw_only=True):
    #: The key itself: shown this once, stored only as a hash.
    key: str


class ApiKeyList(View, kw_only=True):
    items: list[ApiKeyView]


class PickLine(View, kw_only=True):
    sku: str
    name: str | None = None
    quantity: int
    case_pack: int | None = None
    cases: int
    eaches: int


class PickList(View, kw_only=True):
    order_id: str
    number: int
    po_number: str | None = None
    channel: str
    lines: list[PickLine]
