"""Orders from both channels, their cancellations, shipments, pick lists and
packing slips. Every change goes through the engine's scripts."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import msgspec
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.types import Scope

from api import schemas as s
from api.auth import STAFF, Principal, Role, requires
from api.customers import load_customer
from api.docs import responses
from api.pdf import packing_slip
from api.problems import NOT_FOUND, VALIDATION, ApiProblem
from api.responses import EncodedJson
from api.operations import now_ms
from api.ratelimit import read_with_rate
from api.services import Services, services_for
from api.views import order_view, shipment_view
from engine import ordering
from engine.commands import CancelLine, CancelOrder, PlaceOrder, ShipOrder, SkuQty
from engine.model import Order
from engine.store import Store, as_hash, order_from_row
from engine.picking import pick_lines, reserved_by_sku
from persistence.queries import OrderFilter

_encode = msgspec.json.Encoder().encode
IdPath = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
ORDER_STATUSES = ("cancelled", "shipped", "exception", "partially_shipped", "open")


def owns(principal: Principal, order: Order) -> bool:
    return not principal.is_wholesale or order.header.get("customer_id") == principal.customer_id


async def visible_order(services: Services, principal: Principal, order_id: str) -> Order:
    order = await services.reader.get(order_id)
    if order is None or not owns(principal, order):
        raise ApiProblem(NOT_FOUND, "no such order")
    return order


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def order_request(data: s.OrderBody, principal: Principal) -> ordering.OrderRequest:
    return ordering.OrderRequest(
        channel=data.channel, customer_id=data.customer_id, profile_id=data.profile_id,
        po_number=data.po_number, backorder_policy=data.backorder_policy, currency=data.currency,
        ship_to=msgspec.to_builtins(data.ship_to) if data.ship_to else None, notes=data.notes,
        lines=tuple(ordering.LineRequest(sku=l.sku, quantity=l.quantity, unit_price=l.unit_price)
                    for l in data.lines),
        caller_customer_id=principal.customer_id, caller_is_wholesale=principal.is_wholesale,
        caller_is_staff=principal.role in (Role.ADMIN, Role.OPERATOR))


#: build_order's default: look the customer up
_LOOK_UP: Any = object()


def customer_of(req: ordering.OrderRequest) -> str | None:
    """The customer whose record the order is built from (checked when built)."""
    return req.caller_customer_id if req.caller_is_wholesale else req.customer_id


async def build_order(services: Services, req: ordering.OrderRequest,
                      customer: dict[str, Any] | None = _LOOK_UP) -> PlaceOrder:
    """Builds the order's command (engine/ordering.py) from its customer's
    record: the one given (the API's, read through Operations' cache and
    checked by version in the FCALL), else looked up in Redis; the staff UI
    builds phone orders the same way."""
    customer_id = ordering.order_customer(req)
    ordering.check_policy(req)
    if customer is _LOOK_UP:
        customer = await load_customer(services, customer_id) if customer_id is not None else None
    if customer_id is None:
        customer = None
    if customer_id is not None:
        if customer is None:
            raise ordering.OrderRequestError("not_found", "no such customer",
                                             [{"field": "customer_id", "message": "no such customer"}])
    return ordering.place_order(req, customer, now_ms=int(time.time() * 1000))


def packed(data: s.ShipmentBody) -> list[dict[str, Any]] | None:
    """The cartons as the shipment keeps them. What they hold is not held
    against the shipment's lines here: the 856's readiness check reports
    cartons that do not add up to what shipped (docs/documents.md)."""
    if not data.cartons:
        return None
    return [_present({"number": i + 1, "weight_lb": carton.weight_lb, "pallet": carton.pallet,
                      "lines": [{"sku": l.sku, "quantity": l.quantity} for l in carton.lines]})
            for i, carton in enumerate(data.cartons)]


async def place(services: Services, scope: Scope, principal: Principal, data: s.OrderBody) -> bytes:
    """POST /v1/orders: the new order's view (JSON), or the replay of the
    Idempotency-Key's; raises the problem of a refusal."""
    req = order_request(data, principal)
    ordering.merge_lines(req.lines)  # a 400 for the lines before anything else

    async def build(customer: dict[str, Any] | None = None) -> PlaceOrder:
        return await build_order(services, req, customer)

    customer_id = customer_of(req)
    result = await services.operations.run(scope, principal, data, build,
                                           ("customer", customer_id) if customer_id else None)
    return _encode(order_view(result.order))


async def read_one(services: Services, scope: Scope, principal: Principal, order_id: str) -> bytes:
    """GET /v1/orders/{id}: the order's view (JSON); 404 for an order the
    caller may not see. The rate-limit step and the read are one round
    trip; PostgreSQL is asked only for an order Redis no longer keeps."""
    store = services.store
    if not isinstance(store, Store):
        return _encode(order_view(await visible_order(services, principal, order_id)))
    [row] = await read_with_rate(scope, services.limiter, store, [("HGETALL", store.keys.order(order_id))],
                                 now_ms())
    order = order_from_row(order_id, as_hash(row)) or await services.reader.get(order_id)
    if order is None or not owns(principal, order):
        raise ApiProblem(NOT_FOUND, "no such order")
    return _encode(order_view(order))


class OrderController(Controller):
    tags = ["orders"]

    @post("/v1/orders", status_code=201, opt={"rate_limit": "in_call"},
          responses=responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
          summary="Place an order: every line reserved atomically from the shared pool")
    async def create(self, data: JSONBody[s.OrderBody], request: Request) -> Response[s.OrderView]:
        # api/hot.py serves this route; this handler answers what it leaves
        # to Litestar (a trailing slash, a query string), the same way
        data = await s.strict_body(request, s.OrderBody)
        return EncodedJson(await place(await services_for(request), request.scope, request.user, data), 201)

    @get("/v1/orders/{order_id:str}", opt={"rate_limit": "in_call"},
         responses=responses(400, 401, 404, 429, 503), summary="An order")
    async def get_one(self, order_id: IdPath, request: Request) -> Response[s.OrderView]:
        # served by api/hot.py, as create() is
        return EncodedJson(await read_one(await services_for(request), request.scope, request.user, order_id))

    @get("/v1/orders", responses=responses(400, 401, 429, 503),
         summary="Orders, newest first; PO search is exact and case-insensitive")
    async def list_orders(
        self, request: Request, services: NamedDependency[Services],
        po_number: Annotated[str | None, Parameter(max_length=128, pattern=r"^[^\x00-\x1f]*$")] = None,
        channel: Annotated[str | None, Parameter(pattern="^(dtc|wholesale)$")] = None,
        status: Annotated[str | None, Parameter(
            pattern="^(cancelled|shipped|exception|partially_shipped|open)$")] = None,
        customer_id: Annotated[str | None, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
        sku: Annotated[str | None, Parameter(pattern=r"^[^\x00-\x1f]{1,255}$")] = None,
        backordered: Annotated[bool | None, Parameter(
            description="true: orders with backordered units; false: orders without")] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0,
    ) -> s.OrderList:
        principal: Principal = request.user
        if principal.is_wholesale:
            if customer_id is not None and customer_id != principal.customer_id:
                return s.OrderList(items=[], total=0)
            customer_id = principal.customer_id
        f = OrderFilter(po_number=po_number, channel=channel, status=status,
                        customer_id=customer_id, sku=sku, backordered=backordered)
        orders, total = await services.reader.list(f, limit=limit, offset=offset)
        return s.OrderList(items=[order_view(o) for o in orders], total=total)

    @post("/v1/orders/{order_id:str}/cancel", guards=[requires(*STAFF)], status_code=200,
          opt={"rate_limit": "in_call"},
          responses=responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
          summary="Cancel the unshipped remainder, or some units per SKU")
    async def cancel(self, order_id: IdPath, request: Request, services: NamedDependency[Services],
                     data: JSONBody[s.CancelBody | None] = None) -> s.OrderView:
        data = await s.strict_body(request, s.CancelBody, optional=True)
        body = data or s.CancelBody()
        both = [{"field": f"lines[{i}]", "message": "give sku or line, exactly one"}
                for i, l in enumerate(body.lines or []) if (l.sku is None) == (l.line is None)]
        if both:
            raise ApiProblem(VALIDATION, "each cancel line names a sku or a line, exactly one", errors=both)

        async def build() -> CancelOrder:
            await visible_order(services, request.user, order_id)
            lines = None
            if body.lines:
                lines = tuple(CancelLine(sku=l.sku, line=l.line, qty=l.quantity) for l in body.lines)
            return CancelOrder(order_id=order_id, lines=lines)

        result = await services.operations.run(request.scope, request.user, body, build)
        return order_view(result.order, result.fills + result.later_fills)

    @post("/v1/orders/{order_id:str}/shipments", guards=[requires(*STAFF)], status_code=201,
          opt={"rate_limit": "in_call"},
          responses=responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
          summary="Ship reserved units; each shipment is tracked separately")
    async def ship(self, order_id: IdPath, data: JSONBody[s.ShipmentBody], request: Request,
                   services: NamedDependency[Services]) -> s.ShipmentView:
        data = await s.strict_body(request, s.ShipmentBody)
        cartons = packed(data)

        async def build() -> ShipOrder:
            await visible_order(services, request.user, order_id)
            shipment = {
                "id": "shp_" + uuid.uuid4().hex[:16], "method": data.method, "carrier": data.carrier,
                "service": data.service, "tracking_number": data.tracking_number,
                "tracking_url": data.tracking_url, "packages": data.packages, "pallets": data.pallets,
            }
            # only what is given (the shipment is kept with the order in Redis)
            shipment.update(_present({"bill_of_lading": data.bill_of_lading, "weight_lb": data.weight_lb,
                                      "cartons": cartons}))
            if cartons:  # the counts follow the cartons
                shipment["packages"] = len(cartons)
                shipment["pallets"] = max([data.pallets or 0] + [c.get("pallet") or 0 for c in cartons]) or None
            return ShipOrder(order_id=order_id, shipment=shipment,
                             lines=tuple(SkuQty(sku=l.sku, qty=l.quantity) for l in data.lines),
                             sscc_prefix=services.settings.sscc_prefix if cartons else "")

        result = await services.operations.run(request.scope, request.user, data, build)
        return shipment_view(result.data["shipment"])

    @get("/v1/orders/{order_id:str}/pick-list", guards=[requires(*STAFF)],
         responses=responses(400, 401, 403, 404, 429, 503),
         summary="What to pick for the reserved units: cases and eaches (wholesale), eaches (DTC)")
    async def pick_list(self, order_id: IdPath, request: Request, services: NamedDependency[Services]) -> s.PickList:
        order = await visible_order(services, request.user, order_id)
        wanted = list(reserved_by_sku(order))
        inventory = dict(zip(wanted, await services.store.inventory(wanted), strict=True))
        lines = [s.PickLine(sku=p.sku, name=p.name, quantity=p.quantity, case_pack=p.case_pack,
                            cases=p.cases, eaches=p.eaches) for p in pick_lines(order, inventory)]
        return s.PickList(order_id=order.id, number=order.number, po_number=order.header.get("po_number"),
                          channel=order.channel.value, lines=lines)

    @get("/v1/orders/{order_id:str}/packing-slip.pdf", guards=[requires(*STAFF)],
         media_type="application/pdf", responses=responses(400, 401, 403, 404, 429, 503),
         summary="Packing slip: ship-to, order and PO number, shipped and backordered lines")
    async def packing_slip_pdf(
        self, order_id: IdPath, request: Request, services: NamedDependency[Services],
        shipment_id: Annotated[str | None, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    ) -> Response[bytes]:
        order = await visible_order(services, request.user, order_id)
        if shipment_id is not None and not any(x["id"] == shipment_id for x in order.shipments):
            raise ApiProblem(NOT_FOUND, "no such shipment on this order")
        skus = sorted({line.sku for line in order.lines if line.sku})
        names = {i.sku: i.details.get("name") for i in await services.store.inventory(skus) if i}
        pdf = packing_slip(order, merchant=services.settings.merchant_name, names=names,
                           shipment_id=shipment_id)
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="packing-slip-{order.number}.pdf"'})
