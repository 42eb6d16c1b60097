"""SKUs, inventory counters, counts, adjustments and receipts."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

import msgspec

from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter
from litestar import Controller, Request, Response, get, post, put
from litestar.params import Parameter
from litestar.types import Scope

from api import schemas as s
from api.auth import STAFF, Principal, requires
from api.docs import responses
from api.operations import now_ms
from api.problems import NOT_FOUND, VALIDATION, ApiProblem
from api.responses import EncodedJson
from api.ratelimit import read_with_rate
from api.services import Services, services_for
from api.views import fills_view, inventory_view, rfc3339, wholesale_inventory_view
from engine.commands import AdjustStock, CountStock, PutSku, ReceiveStock, SkuQty
from engine.model import Inventory, as_list, inventory_from_snapshot
from engine.store import Store, as_hash, inventory_from_row

_encode = msgspec.json.Encoder().encode

SkuPath = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$",
                                   description="the SKU")]
_SKU = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
Limit = Annotated[int, Parameter(ge=1, le=200)]
Offset = Annotated[int, Parameter(ge=0, le=10**9)]


async def read_one(services: Services, scope: Scope, principal: Principal, sku: str) -> bytes:
    """GET /v1/inventory/{sku}: the SKU's counters as the caller's role sees
    them (JSON); the rate-limit step and the read in one round trip."""
    store = services.store
    if isinstance(store, Store):
        [row] = await read_with_rate(scope, services.limiter, store, [("HGETALL", store.keys.sku(sku))], now_ms())
        inv = inventory_from_row(sku, as_hash(row))
    else:
        [inv] = await store.inventory([sku])
    if inv is None:
        raise ApiProblem(NOT_FOUND, f"no SKU {sku}")
    return _encode(_view(principal, inv))


def _view(principal: Principal, inv: Inventory):
    return wholesale_inventory_view(inv) if principal.is_wholesale else inventory_view(inv)


def _change(data: dict) -> s.StockChange:
    return s.StockChange(
        inventory=inventory_view(inventory_from_snapshot(data["inventory"])),
        taken_back=[s.TakenBack(order_id=t["order_id"], sku=t["sku"], units=int(t["units"]),
                                became=t["became"]) for t in as_list(data.get("taken_back"))],
        fills=fills_view(data.get("fills")),
    )


class InventoryController(Controller):
    tags = ["inventory"]

    @put("/v1/skus/{sku:str}", guards=[requires(*STAFF)], status_code=200,
         responses=responses(400, 401, 403, 413, 429, 503), summary="Create or update a SKU")
    async def put_sku(self, sku: SkuPath, data: JSONBody[s.PutSkuBody], request: Request,
                      services: NamedDependency[Services]) -> s.InventoryView:
        data = await s.strict_body(request, s.PutSkuBody)
        meta = {k: getattr(data, k) for k in ("name", "upc", "case_pack", "shopify_inventory_item_id")
                if k in data.__struct_fields__ and _given(data, k)}

        async def build():
            return PutSku(sku=sku, meta=meta, dtc_reserve=data.dtc_reserve)

        result = await services.operations.run(request.scope, request.user, data, build)
        view = inventory_view(result.inventory)
        view.fills = fills_view(result.fills + result.later_fills)
        return view

    @get("/v1/inventory/{sku:str}", opt={"rate_limit": "in_call"},
         responses=responses(400, 401, 404, 429, 503), summary="A SKU's counters")
    async def get_inventory(self, sku: SkuPath,
                            request: Request) -> Response[s.InventoryView | s.WholesaleInventoryView]:
        # served by api/hot.py; this answers what it leaves to Litestar, the same way
        return EncodedJson(await read_one(await services_for(request), request.scope, request.user, sku))

    @get("/v1/inventory", responses=responses(400, 401, 429, 503),
         summary="Counters of the given SKUs, or of all SKUs (newest first)")
    async def list_inventory(self, request: Request, services: NamedDependency[Services], limit: Limit = 50,
                             offset: Offset = 0,
                             sku: Annotated[list[str], QueryParameter(
                                 name="sku", required=False,
                                 description="repeat for several SKUs (at most 200)")] = ()
                             ) -> s.InventoryList:
        store = services.store
        if sku:
            if len(sku) > 200:  # not in the schema: schemathesis cannot tell ?sku=A from ["A"]
                raise ApiProblem(VALIDATION, "at most 200 sku parameters",
                                 errors=[{"field": "sku", "message": "too many"}])
            # a name that is not a valid SKU cannot exist: it is simply not found
            names = [n for n in dict.fromkeys(sku) if _SKU.match(n)]
            found = [i for i in await store.inventory(names) if i is not None]
            return s.InventoryList(items=[_view(request.user, i) for i in found])
        names = [m.decode() for m in await store.redis.zrevrange(store.keys.skus, offset, offset + limit - 1)]
        total = await store.redis.zcard(store.keys.skus)
        found = [i for i in await store.inventory(names) if i is not None]
        return s.InventoryList(items=[_view(request.user, i) for i in found], total=total)

    @post("/v1/inventory/{sku:str}/adjustments", guards=[requires(*STAFF)], status_code=200,
          responses=responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
          summary="Change on hand by a delta (damage, found, ...)")
    async def adjust(self, sku: SkuPath, data: JSONBody[s.AdjustmentBody], request: Request,
                     services: NamedDependency[Services]) -> s.StockChange:
        data = await s.strict_body(request, s.AdjustmentBody)
        if data.delta == 0:
            raise ApiProblem(VALIDATION, "delta must not be 0",
                             errors=[{"field": "delta", "message": "must not be 0"}])

        async def build():
            return AdjustStock(sku=sku, delta=data.delta, reason=data.reason)

        result = await services.operations.run(request.scope, request.user, data, build)
        return _change(result.data | {"fills": result.fills + result.later_fills})

    @put("/v1/inventory/{sku:str}", guards=[requires(*STAFF)], status_code=200,
         responses=responses(400, 401, 403, 404, 409, 413, 429, 503),
         summary="Set on hand to a cycle count")
    async def count(self, sku: SkuPath, data: JSONBody[s.CountBody], request: Request,
                    services: NamedDependency[Services]) -> s.StockChange:
        data = await s.strict_body(request, s.CountBody)
        async def build():
            return CountStock(sku=sku, on_hand=data.on_hand, reason=data.reason,
                              expected_on_hand=data.expected_on_hand)

        result = await services.operations.run(request.scope, request.user, data, build)
        return _change(result.data | {"fills": result.fills + result.later_fills})

    @post("/v1/inventory/receipts", guards=[requires(*STAFF)], status_code=201,
          responses=responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
          summary="Stock arrived: on hand rises and backorders fill")
    async def receive(self, data: JSONBody[s.ReceiptBody], request: Request, services: NamedDependency[Services]) -> s.ReceiptView:
        data = await s.strict_body(request, s.ReceiptBody)
        if data.reference is None and request.headers.get("idempotency-key") is None:
            raise ApiProblem(VALIDATION, "a receipt needs a reference or an Idempotency-Key",
                             errors=[{"field": "reference", "message": "required without Idempotency-Key"}])

        async def build():
            return ReceiveStock(receipt_id="rcp_" + uuid.uuid4().hex[:16], reference=data.reference,
                                lines=tuple(SkuQty(sku=l.sku, qty=l.quantity) for l in data.lines))

        result = await services.operations.run(request.scope, request.user, data, build)
        r = result.data["receipt"]
        return s.ReceiptView(
            id=r["id"], reference=r.get("reference"),
            lines=[s.ReceiptLine(sku=l["sku"], quantity=int(l["quantity"])) for l in as_list(r["lines"])],
            received_at=rfc3339(r.get("received_at_ms")),
            fills=fills_view(result.fills + result.later_fills),
        )


def _given(data, field: str) -> bool:
    """True when the body set the field (PUT semantics: absent = keep)."""
    return getattr(data, field) is not None
