"""Order entry, keyboard first: a phone or email order typed in one screen.

The page (templates/entry.html, static/entry.js) asks three things as the
user types: customers matching what is typed in the combobox, SKUs starting
with what is typed in a line, and for the lines so far what each would do
now (reserve, backorder N, cancel N, refused by the DTC ring-fence). Ctrl+Enter
posts the whole order once: the same command the API makes
(engine/ordering.py), run with the form's Idempotency-Key, so a double
submit makes one order.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import Template

from api.customers import customer_view, load_customer
from api.orders import build_order
from api.services import Services
from engine import ordering
from engine.errors import IdempotencyInFlight, InsufficientStock, InvalidCommand, NotFound, NotReady
from engine.model import MAX_ORDER_LINES, MAX_QTY
from persistence import queries
from ui.base import current_user, page

_SKU = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
POLICIES = ("backorder", "ship_complete", "cancel_remainder", "all_or_nothing", "accept")
Text = Annotated[str, Parameter(max_length=128, pattern=r"^[^\x00-\x1f]*$")]


class LineIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: A SKU or a UPC, as typed.
    code: Annotated[str, msgspec.Meta(max_length=255)]
    quantity: int = 0


class LinesIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    channel: str = "wholesale"
    policy: str | None = None
    lines: Annotated[list[LineIn], msgspec.Meta(max_length=MAX_ORDER_LINES)] = []


class OrderIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    idempotency_key: Annotated[str, msgspec.Meta(min_length=8, max_length=64)]
    channel: str = "wholesale"
    customer_id: str | None = None
    profile_id: str | None = None
    po_number: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    backorder_policy: str | None = None
    notes: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    ship_to: dict[str, str] | None = None
    lines: Annotated[list[LineIn], msgspec.Meta(min_length=1, max_length=MAX_ORDER_LINES)]


async def resolve_codes(services: Services, codes: list[str]) -> dict[str, str]:
    """Typed code -> SKU: a SKU Redis has, else a UPC PostgreSQL knows."""
    names = [c for c in dict.fromkeys(codes) if _SKU.match(c)]
    found = {c: c for c, inv in zip(names, await services.store.inventory(names), strict=True) if inv}
    rest = [c for c in dict.fromkeys(codes) if c not in found and c.isdigit() and len(c) <= 14]
    if rest:
        by_upc = await services.reader.pg_call(lambda conn: queries.skus_by_upc(conn, services.store.keys.merchant, rest))
        found.update(by_upc)
    return found


class EntryController(Controller):
    path = "/ui"

    @get("/orders/new")
    async def form(self, request: Request) -> Template:
        return page(request, "entry.html", title="Order entry", idempotency_key=uuid.uuid4().hex,
                    policies=POLICIES)

    @get("/lookup/customers")
    async def customers(self, services: NamedDependency[Services], q: Text = "") -> list[dict[str, Any]]:
        docs, _ = await services.records.customers(q or None, limit=10, offset=0)
        return [msgspec.to_builtins(customer_view(d)) for d in docs]

    @get("/lookup/customers/{customer_id:str}")
    async def customer(self, customer_id: Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
                       services: NamedDependency[Services]) -> Response:
        doc = await load_customer(services, customer_id)
        if doc is None:
            return Response({"detail": "no such customer"}, status_code=404)
        return Response(msgspec.to_builtins(customer_view(doc)))

    @get("/lookup/skus")
    async def skus(self, services: NamedDependency[Services], q: Text = "") -> list[dict[str, Any]]:
        q = q.strip()
        if not q:
            return []
        rows = await services.reader.pg_call(lambda conn: queries.search_skus(conn, services.store.keys.merchant, q, 10))
        out = [{"sku": sku, "name": name, "upc": upc} for sku, name, upc in rows]
        if _SKU.match(q) and all(r["sku"] != q for r in out):
            # a SKU created a moment ago may not be in PostgreSQL yet: Redis has it
            [inv] = await services.store.inventory([q])
            if inv is not None:
                out.insert(0, {"sku": q, "name": inv.details.get("name"), "upc": inv.details.get("upc")})
        return out

    @post("/lookup/lines", status_code=200)
    async def lines(self, request: Request, services: NamedDependency[Services]) -> list[dict[str, Any]]:
        """Per line: the SKU the code names (or unknown), its availability and
        what placing it now would do."""
        body = msgspec.json.decode(await request.body(), type=LinesIn)
        channel = body.channel if body.channel in ("dtc", "wholesale") else "wholesale"
        policy = body.policy if body.policy in POLICIES else ("backorder" if channel == "wholesale" else "all_or_nothing")
        codes = [l.code.strip() for l in body.lines]
        resolved = await resolve_codes(services, [c for c in codes if c])
        skus = sorted(set(resolved.values()))
        inventory = dict(zip(skus, await services.store.inventory(skus), strict=True))
        # lines of one SKU are merged when placed: preview each against the total
        totals: dict[str, int] = {}
        for code, line in zip(codes, body.lines, strict=True):
            if code in resolved:
                totals[resolved[code]] = totals.get(resolved[code], 0) + max(0, line.quantity)
        out = []
        for code, line in zip(codes, body.lines, strict=True):
            sku = resolved.get(code)
            inv = inventory.get(sku) if sku else None
            if not code:
                out.append({"code": code, "state": "empty"})
            elif inv is None:
                out.append({"code": code, "state": "unknown", "text": f"unknown SKU or UPC {code}"})
            else:
                outcome = ordering.preview_line(inv, totals[sku], channel, policy) if totals[sku] else None
                out.append({
                    "code": code, "sku": sku, "name": inv.details.get("name"), "state": "ok",
                    "available": inv.available, "available_to_wholesale": inv.available_to_wholesale,
                    "dtc_reserve": inv.dtc_reserve,
                    "text": outcome.text() if outcome else "",
                    "outcome": None if outcome is None else outcome.rest_as or "reserve",
                })
        return out

    @post("/orders", status_code=201)
    async def place(self, request: Request, services: NamedDependency[Services]) -> Response:
        user = current_user(request)
        try:
            body = msgspec.json.decode(await request.body(), type=OrderIn)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return Response({"error": f"the order is not valid: {exc}"}, status_code=400)
        codes = [l.code.strip() for l in body.lines]
        bad = [{"index": i, "message": "quantity must be 1 to 1,000,000,000"}
               for i, l in enumerate(body.lines) if not 1 <= l.quantity <= MAX_QTY]
        resolved = await resolve_codes(services, [c for c in codes if c])
        bad += [{"index": i, "message": f"unknown SKU or UPC {c!r}"} for i, c in enumerate(codes) if c not in resolved]
        if bad:
            return Response({"error": "fix the flagged lines", "lines": bad}, status_code=400)
        req = ordering.OrderRequest(
            channel=body.channel, customer_id=body.customer_id or None, profile_id=body.profile_id or None,
            po_number=(body.po_number or "").strip() or None,
            backorder_policy=body.backorder_policy or None, notes=(body.notes or "").strip() or None,
            ship_to={k: v for k, v in (body.ship_to or {}).items() if v} or None,
            lines=tuple(ordering.LineRequest(sku=resolved[c], quantity=l.quantity)
                        for c, l in zip(codes, body.lines, strict=True)),
            caller_is_staff=True, source="ui")
        fingerprint_body = msgspec.to_builtins(body)

        async def build():
            return await build_order(services, req)

        scope = f"{user.actor}\nPOST\n/ui/orders"
        try:
            result = await services.operations.run_keyed(user.actor, scope, body.idempotency_key,
                                                         fingerprint_body, build)
        except ordering.OrderRequestError as exc:
            return Response({"error": exc.detail}, status_code=400)
        except InsufficientStock as exc:
            return Response({"error": "not enough stock to reserve every line in full (all or nothing)",
                             "short": [{"sku": s.sku, "requested": s.requested, "available": s.available}
                                       for s in exc.lines]}, status_code=409)
        except IdempotencyInFlight:
            return Response({"error": "this order is being placed already", "retry": True}, status_code=409)
        except (NotFound, InvalidCommand) as exc:
            return Response({"error": str(exc)}, status_code=400)
        except NotReady as exc:
            return Response({"error": f"not ready: {exc.detail}", "retry": True}, status_code=503)
        order = result.order
        return Response({"order_id": order.id, "number": order.number, "url": f"/ui/orders/{order.id}",
                         "replayed": result.replayed}, status_code=201)
