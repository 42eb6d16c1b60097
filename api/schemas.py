"""Request and response bodies (msgspec Structs). Requests reject unknown
fields; the constraints here are the contract's (API.md, Conventions)."""

from __future__ import annotations

from types import UnionType as _UnionType
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
    says a field of the wrong type is a 400 naming each failing field, so
    handlers read their body through this (Litestar has already checked the
    shape for the OpenAPI document and the size limit)."""
    raw = await request.body()
    if optional and raw.strip() in (b"", b"null"):
        return None
    return decode_strict(raw, body_type)


def decode_strict(raw: bytes, body_type: type[T]) -> T:
    """``raw`` as ``body_type``, strictly; a 400 naming each failing field."""
    from api.problems import VALIDATION, ApiProblem

    try:
        if b"\\u0000" not in raw:
            # the common case in one pass (a body with no NUL escape; the
            # profile of an order at full rate had the slow path at 3%)
            try:
                return msgspec.json.decode(raw, type=body_type, strict=True)
            except msgspec.ValidationError:
                pass  # perhaps 5.0 for an integer: the path below decides
        # JSON Schema counts 5.0 as an integer; strings never are numbers
        value = _integral(msgspec.json.decode(raw))
        try:
            return msgspec.convert(value, type=body_type, strict=True)
        except msgspec.ValidationError as exc:
            # msgspec stops at the first failure; the contract names each one
            errors = field_errors(value, body_type) or [{"field": _field(str(exc)), "message": str(exc)}]
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)[:1000]
            raise ApiProblem(VALIDATION, detail, errors=errors) from exc
    except _NulInText as exc:
        raise ApiProblem(VALIDATION, "text must not contain NUL characters",
                         errors=[{"field": str(exc), "message": "contains \\u0000"}]) from exc
    except msgspec.DecodeError as exc:
        # worded as Litestar words a body it cannot parse (the routes whose
        # body it decodes first answer that), so both paths answer the same
        raise ApiProblem(VALIDATION, f"body: {exc}", errors=[{"field": "body", "message": str(exc)}]) from exc


def _field(message: str) -> str:
    """The field a msgspec error names (``Expected int - at `$.lines[0]```)."""
    path = message.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in message else "$"
    return _api_path(path)


def _api_path(path: str) -> str:
    """msgspec's ``$.lines[0].sku`` -> ``lines[0].sku`` (the engine's style); ``$`` -> ``body``."""
    return path[2:] if path.startswith("$.") else ("body" if path == "$" else path.lstrip("$"))


def field_errors(value, body_type, path: str = "$") -> list[dict[str, str]]:
    """Every failing field of ``value`` as ``body_type`` (a Struct), not only
    the first: unknown and missing fields, each field checked on its own, and
    Structs inside (also in lists) checked field by field."""
    import typing

    if not isinstance(value, dict):
        return _one(value, body_type, path)
    hints = typing.get_type_hints(body_type, include_extras=True)
    info = {f.encode_name: f for f in msgspec.inspect.type_info(body_type).fields}
    errors: list[dict[str, str]] = []
    for key in value:
        if key not in info:
            errors.append({"field": _api_path(f"{path}.{key}"), "message": "unknown field"})
    for name, f in info.items():
        where = f"{path}.{name}"
        if name not in value:
            if f.required:
                errors.append({"field": _api_path(where), "message": "required"})
            continue
        errors.extend(_value_errors(value[name], hints[f.name], where))
    return errors


def _value_errors(value, annotation, path: str) -> list[dict[str, str]]:
    import typing

    inner, meta = annotation, []
    while typing.get_origin(inner) is typing.Annotated:
        inner, *extra = typing.get_args(inner)
        meta += [m for m in extra if isinstance(m, msgspec.Meta)]
    options = [a for a in typing.get_args(inner)] if typing.get_origin(inner) in (typing.Union, _UnionType) else [inner]
    if value is None and type(None) in options:
        return []
    options = [o for o in options if o is not type(None)]
    if len(options) == 1:
        only = options[0]
        if isinstance(only, type) and issubclass(only, msgspec.Struct) and isinstance(value, dict):
            return field_errors(value, only, path)
        item = typing.get_args(only)[0] if typing.get_origin(only) is list else None
        if isinstance(item, type) and issubclass(item, msgspec.Struct) and isinstance(value, list):
            sized = [e for m in meta for e in _length_errors(value, m, path)]
            return sized + [e for i, v in enumerate(value) for e in field_errors(v, item, f"{path}[{i}]")]
    return _one(value, annotation, path)


def _length_errors(value: list, meta: msgspec.Meta, path: str) -> list[dict[str, str]]:
    if meta.min_length is not None and len(value) < meta.min_length:
        return [{"field": _api_path(path), "message": f"Expected `array` of length >= {meta.min_length}"}]
    if meta.max_length is not None and len(value) > meta.max_length:
        return [{"field": _api_path(path), "message": f"Expected `array` of length <= {meta.max_length}"}]
    return []


def _one(value, annotation, path: str) -> list[dict[str, str]]:
    """[] when ``value`` is a valid ``annotation``, else its one error."""
    try:
        msgspec.convert(value, type=annotation, strict=True)
    except msgspec.ValidationError as exc:
        return [{"field": _api_path(path), "message": str(exc).split(" - at `", 1)[0]}]
    return []


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


ItemQualifier = Literal["VN", "VP", "VC", "UP", "EN", "UK", "BP", "IN", "CB", "SK"]


class EdiPartnerBody(Body, kw_only=True):
    """A wholesale profile's trading-partner identity and options (docs/documents.md)."""

    #: ISA05/ISA06 of the partner's interchanges (e.g. "12", "4405197800").
    isa_qualifier: Annotated[str, Meta(min_length=2, max_length=2, pattern=r"^[A-Z0-9]{2}$")]
    isa_id: Annotated[str, Meta(min_length=1, max_length=15, pattern=r"^[^*~>^\x00-\x1f]+$")]
    #: GS02, when the partner sends several application ids under one ISA id.
    gs_id: Annotated[str, Meta(min_length=1, max_length=15, pattern=r"^[^*~>^\x00-\x1f]+$")] | None = None
    #: Which PO1 identifiers map to a SKU, in order (VN/VP/VC: our SKU; UP/EN/UK: the
    #: SKU's UPC; BP/IN/CB/SK: the customer's item cross-reference).
    item_qualifiers: Annotated[list[ItemQualifier], Meta(min_length=1, max_length=10)] | None = None
    send_855: bool | None = None
    send_856: bool | None = None
    send_810: bool | None = None


class ProfileBody(Body, kw_only=True):
    channel: Channel
    payment_terms: Terms | None = None
    backorder_policy: Policy | None = None
    shopify_customer_id: Annotated[str, Meta(max_length=32)] | None = None
    ship_to: Address | None = None
    #: The trading partner behind a wholesale profile (EDI).
    edi: EdiPartnerBody | None = None
    #: The contact for this profile's emails (default: the customer's email).
    email: Email | None = None
    #: The emails this profile opted in to (none by default).
    email_notifications: Annotated[list[EmailKind], Meta(max_length=3)] | None = None


class CustomerBody(Body, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=255)]
    email: Annotated[str, Meta(max_length=255)] | None = None
    phone: Annotated[str, Meta(max_length=64)] | None = None
    profiles: Annotated[list[ProfileBody], Meta(min_length=1, max_length=20)]
    #: The company, and the merchant's own account number for the customer
    #: (both searched, like name, email and phone).
    company: ShortText | None = None
    account_number: Annotated[str, Meta(max_length=64)] | None = None


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
    lines: Annotated[list[OrderLineBody], Meta(
        min_length=1, max_length=500,
        description="Lines naming the same SKU are merged into one: their quantities are summed "
                    "(at most 1000000000 together) and their unit prices, where given, must be equal.")]


class CancelLineBody(Body, kw_only=True):
    """Give ``sku`` (every line of that SKU; any text up to 255 characters,
    "" for lines that came without one) or ``line`` (a 0-based line index:
    a line whose SKU is missing or malformed), not both."""

    sku: Annotated[str, Meta(max_length=255)] | None = None
    line: Annotated[int, Meta(ge=0, le=499)] | None = None
    quantity: Qty


class CancelBody(Body, kw_only=True):
    lines: Annotated[list[CancelLineBody], Meta(min_length=1, max_length=500)] | None = None


Weight = Annotated[float, Meta(ge=0.001, le=1_000_000, description="pounds")]


class CartonBody(Body, kw_only=True):
    """One carton of a shipment: which units are in it, and the pallet it is on."""

    lines: Annotated[list[SkuQtyBody], Meta(min_length=1, max_length=500)]
    weight_lb: Weight | None = None
    #: 1-based number of the pallet the carton is on.
    pallet: Annotated[int, Meta(ge=1, le=5000)] | None = None


class ShipmentBody(Body, kw_only=True):
    lines: Annotated[list[SkuQtyBody], Meta(min_length=1, max_length=500)]
    method: Literal["parcel", "freight"]
    carrier: ShortText | None = None
    service: ShortText | None = None
    tracking_number: Annotated[str, Meta(max_length=128)] | None = None
    tracking_url: Annotated[str, Meta(max_length=2048)] | None = None
    packages: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    pallets: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    #: The cartons (and pallets) the units are packed in; each gets an SSCC-18.
    cartons: Annotated[list[CartonBody], Meta(min_length=1, max_length=5000)] | None = None
    bill_of_lading: Annotated[str, Meta(max_length=64)] | None = None
    #: Gross weight of the shipment.
    weight_lb: Weight | None = None


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


class CartonView(View, kw_only=True):
    number: int
    #: None when the shipment was recorded without ONHAND_GS1_COMPANY_PREFIX.
    sscc: str | None = None
    weight_lb: float | None = None
    pallet: int | None = None
    lines: list[ShipmentLine]


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
    bill_of_lading: str | None = None
    weight_lb: float | None = None
    cartons: list[CartonView] = []
    #: The SSCC of pallet n at index n - 1.
    pallet_ssccs: list[str] = []


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
    edi: dict | None = None
    email: str | None = None
    email_notifications: list[str] = []


class CustomerView(View, kw_only=True):
    id: str
    name: str
    email: str | None = None
    phone: str | None = None
    profiles: list[ProfileView]
    created_at: str
    company: str | None = None
    account_number: str | None = None


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
    total: int | None = None


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


class LedgerEntryView(View, kw_only=True):
    """One inventory movement: how each counter of the SKU changed, why, who
    made the change and through which operation."""

    id: int
    at: str
    sku: str
    order_id: str | None = None
    #: reserve, fill, ship, cancel, receipt, count, adjust, return, take_back, exception, ...
    reason: str
    #: The operation's event type (order.accepted, stock.received, ...).
    kind: str
    actor: str
    operation_id: str
    on_hand: int
    reserved_dtc: int
    reserved_wholesale: int
    backordered_dtc: int
    backordered_wholesale: int
    exception: int
    units: int


class LedgerList(View, kw_only=True):
    items: list[LedgerEntryView]
    total: int
    #: Changes accepted but not yet in the ledger (the outbox backlog; usually
    #: drained within a second), so a reader knows how current the list is.
    pending_events: int


class DeadLetterView(View, kw_only=True):
    event_id: str
    #: open, replayed or discarded
    status: str
    error: str
    failures: int
    created_at: str
    resolved_at: str | None = None
    resolved_by: str | None = None
    note: str | None = None
    #: The outbox event as it was stored (JSON text; not JSON when unreadable).
    payload: str


class DeadLetterList(View, kw_only=True):
    items: list[DeadLetterView]
    total: int


class DeadLetterReplayBody(Body, kw_only=True):
    note: Annotated[str, Meta(max_length=2000)] | None = None


class DiscardBody(Body, kw_only=True):
    #: Why it is safe to drop (required: someone will ask).
    note: Annotated[str, Meta(min_length=1, max_length=2000)]
