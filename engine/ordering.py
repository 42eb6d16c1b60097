"""Building an order from what a caller asked for: pure rules, data in,
command out. The API (api/orders.py) and the staff UI (ui/entry.py) both
call these, so a phone order and an API order are the same command.

The caller looks the customer record up (through the store) and passes it
in; nothing here does I/O.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import msgspec

from engine.commands import OrderLineRequest, PlaceOrder
from engine.errors import OnhandError
from engine.model import MAX_QTY, Channel, Inventory, Policy, default_policy


class OrderRequestError(OnhandError):
    """Raised when an order request cannot be placed as asked: ``kind`` is
    "validation", "not_found" or "forbidden"; ``errors`` name each field."""

    def __init__(self, kind: str, detail: str, errors: list[dict[str, str]] | None = None):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.errors = errors or []


class LineRequest(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    unit_price: str | None = None


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What a caller asks for (an API body or the order entry form)."""

    channel: str
    lines: tuple[LineRequest, ...]
    customer_id: str | None = None
    profile_id: str | None = None
    po_number: str | None = None
    backorder_policy: str | None = None
    currency: str | None = None
    ship_to: dict[str, Any] | None = None
    notes: str | None = None
    #: Who places it: "wholesale" callers are bound to their customer.
    caller_customer_id: str | None = None
    caller_is_wholesale: bool = False
    caller_is_staff: bool = True
    #: The order's source in its document ("api" when absent).
    source: str | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict)


def merge_lines(lines: tuple[LineRequest, ...] | list[LineRequest]) -> list[LineRequest]:
    """Lines naming the same SKU are merged (quantities summed, API.md). A
    merged line holds one quantity (at most 10^9) and one unit price, so a
    sum above the limit, or two different prices, is refused naming the later
    line's field."""
    merged: dict[str, LineRequest] = {}
    first: dict[str, int] = {}
    errors = []
    for i, line in enumerate(lines):
        if line.sku not in merged:
            merged[line.sku], first[line.sku] = line, i
            continue
        had, j = merged[line.sku], first[line.sku]
        quantity = had.quantity + line.quantity
        if quantity > MAX_QTY:
            errors.append({"field": f"lines[{i}].quantity", "message": (
                f"lines[{j}] and lines[{i}] name SKU {line.sku}, so they are merged: "
                f"their quantities sum to {quantity}, above {MAX_QTY}")})
        if None not in (had.unit_price, line.unit_price) and had.unit_price != line.unit_price:
            errors.append({"field": f"lines[{i}].unit_price", "message": (
                f"lines[{j}] and lines[{i}] name SKU {line.sku}, so they are merged, but their "
                f"unit prices differ ({had.unit_price} and {line.unit_price})")})
        merged[line.sku] = LineRequest(sku=line.sku, quantity=quantity,
                                       unit_price=had.unit_price or line.unit_price)
    if errors:
        raise OrderRequestError("validation", "; ".join(e["message"] for e in errors)[:1000], errors)
    return list(merged.values())


def order_customer(req: OrderRequest) -> str | None:
    """The customer the order belongs to (a wholesale caller's own, always);
    raises when the caller may not place it."""
    if req.caller_is_wholesale:
        if req.channel != "wholesale":
            raise OrderRequestError("forbidden", "a wholesale key places wholesale orders only")
        if req.customer_id is not None and req.customer_id != req.caller_customer_id:
            raise _not_found("no such customer", "customer_id")
        return req.caller_customer_id
    return req.customer_id


def choose_profile(req: OrderRequest, customer: dict[str, Any] | None) -> dict[str, Any]:
    """The customer's profile for this order: the one named, else the first of
    the order's channel, else none."""
    if customer is None:
        if req.profile_id is not None:
            raise _not_found("no such profile", "profile_id")
        return {}
    profiles = customer.get("profiles") or []
    if req.profile_id is None:
        return next((p for p in profiles if p["channel"] == req.channel), {})
    match = [p for p in profiles if p["id"] == req.profile_id]
    if not match:
        raise _not_found("no such profile for this customer", "profile_id")
    if match[0]["channel"] != req.channel:
        raise OrderRequestError("validation", "the profile is for another channel",
                                [{"field": "profile_id", "message": "channel mismatch"}])
    return match[0]


def check_policy(req: OrderRequest) -> None:
    if req.backorder_policy == "accept":
        if req.channel != "dtc":
            raise OrderRequestError("validation", "accept is for DTC orders only",
                                    [{"field": "backorder_policy", "message": "accept is DTC only"}])
        if not req.caller_is_staff:
            raise OrderRequestError("forbidden", "only staff keys may place accept orders")


def place_order(req: OrderRequest, customer: dict[str, Any] | None, *, now_ms: int,
                order_id: str | None = None) -> PlaceOrder:
    """The command for ``req``. ``customer`` is the record of
    :func:`order_customer`'s customer (None when the order names none; the
    caller refuses an unknown one before calling)."""
    check_policy(req)
    lines = merge_lines(req.lines)
    customer_id = order_customer(req)
    profile = choose_profile(req, customer if customer_id is not None else None)
    policy = req.backorder_policy or profile.get("backorder_policy") or default_policy(Channel(req.channel))
    # The order's own document, kept in Redis with every open order (so only
    # what is set: an absent field reads as null, the id and channel are the
    # order's own fields, "source" is "api" by default)
    header = _present({
        "customer_id": customer_id,
        "profile_id": profile.get("id"),
        "po_number": req.po_number,
        "payment_terms": profile.get("payment_terms"),
        "currency": req.currency,
        "created_at_ms": now_ms,
        "ship_to": req.ship_to if req.ship_to else profile.get("ship_to"),
        "notes": req.notes,
        "source": req.source,
        **req.extra,
    })
    if any(line.unit_price is not None for line in lines):
        header["lines"] = [_present({"unit_price": line.unit_price}) for line in lines]
    return PlaceOrder(order_id=order_id or new_order_id(), channel=req.channel, policy=str(policy),
                      lines=tuple(OrderLineRequest(sku=line.sku, qty=line.quantity) for line in lines),
                      doc=msgspec.json.encode(header).decode())


def new_order_id() -> str:
    return "ord_" + secrets.token_hex(8)  # 16 random hex digits, as uuid4().hex[:16] gave (without a UUID object)


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _not_found(detail: str, field_name: str) -> OrderRequestError:
    return OrderRequestError("not_found", detail, [{"field": field_name, "message": detail}])


# ---------------------------------------------------------------- previews


@dataclass(frozen=True)
class LineOutcome:
    """What placing a line would do now: reserve ``reserve`` units and deal
    with the rest as ``rest_as`` (backorder, cancel, exception, refuse)."""

    reserve: int
    rest: int
    rest_as: str | None
    #: The DTC ring-fence keeps units a wholesale line could otherwise take.
    fenced: int = 0

    def text(self) -> str:
        """In words, as the order entry screen shows it."""
        if self.rest_as == "refuse":
            why = "by the DTC ring-fence" if self.fenced else "for want of stock"
            return f"refused {why}: the order is all or nothing and {self.rest} are short"
        parts = [f"reserve {self.reserve}"] if self.reserve else []
        if self.rest:
            parts.append({"backorder": "backorder", "cancel": "cancel", "exception": "exception units"}
                         [self.rest_as or "backorder"] + f" {self.rest}")
        text = ", ".join(parts) or "nothing"
        if self.fenced and self.rest:
            text += f" ({self.fenced} kept by the DTC ring-fence)"
        return text


def preview_line(inv: Inventory, quantity: int, channel: str, policy: str) -> LineOutcome:
    """The rule of lua/lib.lua's place_order for one line against the SKU's
    counters now (a line's own order may take more than one line of a SKU:
    the UI merges lines by SKU before asking)."""
    free = inv.available_to_wholesale if channel == "wholesale" else inv.available
    fenced = max(0, min(quantity, inv.available) - free) if channel == "wholesale" else 0
    take = min(quantity, free)
    rest = quantity - take
    if rest == 0:
        return LineOutcome(take, 0, None, 0)
    rest_as = {Policy.CANCEL_REMAINDER: "cancel", Policy.ACCEPT: "exception",
               Policy.ALL_OR_NOTHING: "refuse"}.get(Policy(policy), "backorder")
    if rest_as == "refuse":
        return LineOutcome(0, quantity, "refuse", fenced)
    return LineOutcome(take, rest, rest_as, fenced)


@dataclass(frozen=True)
class WaitingLine:
    """A line waiting for stock (backordered or exception units)."""

    order_id: str
    line: int
    seq: int
    channel: str
    units: int


@dataclass(frozen=True)
class PlannedFill:
    order_id: str
    line: int
    seq: int
    channel: str
    units: int


def preview_fills(inv: Inventory, received: int, waiting: list[WaitingLine]) -> list[PlannedFill]:
    """Which waiting lines a receipt of ``received`` units would fill, oldest
    acceptance first, as lua/lib.lua's fill does: a DTC line may take all of
    available, a wholesale line at most available_to_wholesale (and is passed
    over while that is 0)."""
    available = inv.available + received
    fence = inv.dtc_reserve
    fills = []
    queue = sorted(waiting, key=lambda w: w.seq)
    left = {id(w): w.units for w in queue}
    while available > 0:
        to_wholesale = max(0, available - fence)
        head = next((w for w in queue if left[id(w)] > 0
                     and (w.channel == "dtc" or to_wholesale > 0)), None)
        if head is None:
            break
        cap = available if head.channel == "dtc" else to_wholesale
        units = min(left[id(head)], cap)
        left[id(head)] -= units
        available -= units
        fills.append(PlannedFill(head.order_id, head.line, head.seq, head.channel, units))
    return fills
