"""Orders: search and lists, and one order with its lines, timeline,
shipments (ship any part, all lines visible), cancel, packing slip and pick
list. Reads through the same readers as the API; changes are the same
commands, with the signed-in user as the actor."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template

from api.customers import load_customer
from api.pdf import packing_slip, pick_list
from api.services import Services
from api.views import rfc3339
from engine.commands import CancelLine, CancelOrder, ShipOrder, SkuQty
from engine.errors import Conflict, InvalidCommand, NotFound, OnhandError
from engine.model import Order, Policy
from engine.picking import pick_lines, reserved_by_sku
from persistence import queries
from persistence.queries import OrderFilter
from ui.base import current_user, page
from ui.users import get_user

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
IdPath = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
_SKU = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
STATUSES = ("open", "partially_shipped", "exception", "shipped", "cancelled")
#: Orders counted for a list's total at most (beyond: "more than 10,000").
COUNT_CAP = 10_001

#: What the rest of a line does after a partial shipment, by policy (shown
#: next to the ship form: no dialog asks).
REMAINDER = {
    Policy.BACKORDER: "Units not shipped now stay reserved or backordered and ship later.",
    Policy.SHIP_COMPLETE: "Ships only once every line is fully reserved; after that it may ship in parts.",
    Policy.CANCEL_REMAINDER: "What stock could not cover was cancelled when the order came in; "
                             "units not shipped now stay reserved.",
    Policy.ALL_OR_NOTHING: "Every line was reserved in full; units not shipped now stay reserved.",
    Policy.ACCEPT: "Exception units wait for stock (or staff cancel them); units not shipped now stay reserved.",
}


def line_state(line) -> str:
    """A line's state in words (never only a colour)."""
    parts = []
    for n, word in ((line.reserved, "reserved"), (line.backordered, "backordered"), (line.exception, "exception"),
                    (line.shipped, "shipped"), (line.cancelled, "cancelled"), (line.returned, "returned")):
        if n:
            parts.append(f"{n} {word}")
    return ", ".join(parts) or "nothing"


async def search_filter(services: Services, q: str, base: OrderFilter) -> tuple[OrderFilter, str]:
    """What the search box means: a PO number, an order number, a tracking
    number, a SKU, or a customer's name, company, email or phone (in that
    order, the first that finds anything). Returns the filter and what it
    matched on."""
    from dataclasses import replace

    for field, f in (("PO number", replace(base, po_number=q)),
                     *((("order number", replace(base, number=int(q))),) if q.isdigit() and len(q) < 18 else ()),
                     ("tracking number", replace(base, tracking_number=q)),
                     *((("SKU", replace(base, sku=q)),) if _SKU.match(q) else ())):
        if await services.reader.exists(f):
            return f, field
    docs, _ = await services.records.customers(q, limit=200, offset=0)
    return replace(base, customer_ids=tuple(d["id"] for d in docs)), "customer"


class OrdersController(Controller):
    path = "/ui/orders"

    @get("/")
    async def orders(self, request: Request, services: NamedDependency[Services],
                     q: Annotated[str, Parameter(max_length=128, pattern=r"^[^\x00-\x1f]*$")] = "",
                     channel: Annotated[str, Parameter(pattern="^(|dtc|wholesale)$")] = "",
                     status: Annotated[str, Parameter(pattern="^(|" + "|".join(STATUSES) + ")$")] = "",
                     backordered: Annotated[str, Parameter(pattern="^(|true|false)$")] = "",
                     sku: Annotated[str, Parameter(max_length=64, pattern=r"^[^\x00-\x1f]*$")] = "",
                     customer_id: Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{0,64}$")] = "",
                     limit: Annotated[int, Parameter(ge=25, le=250)] = 25,
                     offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0) -> Response | Template:
        q = q.strip()
        base = OrderFilter(channel=channel or None, status=status or None, sku=sku or None,
                           customer_id=customer_id or None,
                           backordered={"true": True, "false": False}.get(backordered))
        matched = None
        if q.startswith("ord_") and (order := await services.reader.get(q)) is not None:
            return Redirect(f"/ui/orders/{order.id}", status_code=303)
        f = base
        if q:
            f, matched = await search_filter(services, q, base)
        found, total = await services.reader.list(f, limit=limit, offset=offset, count_cap=COUNT_CAP)
        if matched == "PO number" and total == 1 and offset == 0:
            # an exact PO opens its order
            return Redirect(f"/ui/orders/{found[0].id}", status_code=303)
        names = await _customer_names(services, found)
        rows = [_row(o, names) for o in found]
        query = {"q": q, "channel": channel, "status": status, "backordered": backordered, "sku": sku,
                 "customer_id": customer_id, "limit": limit}
        return page(request, "orders.html", title="Orders", rows=rows, total=total, offset=offset,
                    more=total >= COUNT_CAP,
                    limit=limit, query=query, statuses=STATUSES, matched=matched,
                    qs="&".join(f"{k}={_quote(v)}" for k, v in query.items() if v))


class OrderController(Controller):
    path = "/ui/orders/{order_id:str}"

    @get("/")
    async def order(self, request: Request, order_id: IdPath, services: NamedDependency[Services]) -> Template:
        order = await services.reader.get(order_id)
        if order is None:
            return _no_such_order(request, order_id)
        return await self._render(request, services, order, notice=_notice(request), error=None)

    async def _render(self, request: Request, services: Services, order: Order, *, notice: str | None,
                      error: str | None, status_code: int = 200) -> Template:
        h = order.header
        customer = await load_customer(services, h["customer_id"]) if h.get("customer_id") else None
        skus = sorted({line.sku for line in order.lines if line.sku})
        names = {i.sku: i.details.get("name") for i in await services.store.inventory(skus) if i}
        f = queries.LedgerFilter(order_id=order.id)
        try:
            ledger, _ = await services.reader.pg_call(lambda conn: queries.ledger(conn, services.store.keys.merchant, f, 200, 0))
            pending = await services.redis.xlen(services.store.keys.outbox)
        except OnhandError:
            ledger, pending = [], None
        documents = await _edi_documents(services, order.id)
        timeline = _timeline(order, ledger)
        for e in timeline:
            if e["actor"].startswith("user:") and (who := await get_user(services.store, e["actor"][5:])):
                e["actor"] = who.email
        lines = [{"i": i, "line": line, "name": names.get(line.sku), "state": line_state(line)}
                 for i, line in enumerate(order.lines)]
        return page(request, "order.html", title=f"Order {order.number}", status_code=status_code, order=order,
                    h=h, customer=customer, lines=lines, timeline=timeline, pending=pending, notice=notice,
                    error=error, remainder=REMAINDER.get(order.policy, ""), created=rfc3339(h.get("created_at_ms")),
                    shipments=[{**x, "at": rfc3339(x.get("shipped_at_ms"))} for x in order.shipments],
                    returns=[{**x, "at": rfc3339(x.get("returned_at_ms"))} for x in order.returns],
                    can_ship=any(line.reserved for line in order.lines), documents=documents,
                    idempotency_key=uuid.uuid4().hex)

    @post("/ship", status_code=303)
    async def ship(self, request: Request, order_id: IdPath, data: Form,
                   services: NamedDependency[Services]) -> Response | Template:
        user = current_user(request)
        order = await services.reader.get(order_id)
        if order is None:
            return _no_such_order(request, order_id)
        wanted: dict[str, int] = {}
        for i, line in enumerate(order.lines):
            raw = (data.get(f"ship_{i}") or "").strip()
            if raw and line.sku:
                if not raw.isdigit():
                    return await self._render(request, services, order, notice=None, status_code=400,
                                              error=f"Line {i + 1}: ship a whole number of units")
                if int(raw):
                    wanted[line.sku] = wanted.get(line.sku, 0) + int(raw)
        if not wanted:
            return await self._render(request, services, order, notice=None, status_code=400,
                                      error="Nothing to ship: enter a quantity on at least one line.")
        method = data.get("method") if data.get("method") in ("parcel", "freight") else "parcel"

        def text(name: str, n: int = 128) -> str | None:
            value = (data.get(name) or "").strip()[:n]
            return value or None

        def count(name: str) -> int | None:
            value = (data.get(name) or "").strip()
            return int(value) if value.isdigit() and 0 < int(value) <= 100_000 else None

        shipment = {"id": "shp_" + uuid.uuid4().hex[:16], "method": method, "carrier": text("carrier"),
                    "service": text("service"), "tracking_number": text("tracking_number"),
                    "tracking_url": text("tracking_url", 2000), "packages": count("packages"),
                    "pallets": count("pallets")}
        body = {"lines": sorted(wanted.items()), **{k: v for k, v in shipment.items() if k != "id"}}

        async def build():
            return ShipOrder(order_id=order.id, shipment=shipment,
                             lines=tuple(SkuQty(sku=s, qty=q) for s, q in wanted.items()))

        try:
            result = await services.operations.run_keyed(
                user.actor, f"{user.actor}\nPOST\n/ui/orders/{order.id}/ship",
                _key(data), body, build)
        except (Conflict, InvalidCommand, NotFound) as exc:
            return await self._render(request, services, await services.reader.get(order.id) or order, notice=None,
                                      status_code=409, error=f"Not shipped: {getattr(exc, 'detail', exc)}")
        shp = result.data["shipment"]["id"]
        return Redirect(f"/ui/orders/{order.id}?shipped={shp}", status_code=303)

    @post("/cancel", status_code=303)
    async def cancel(self, request: Request, order_id: IdPath, data: Form,
                     services: NamedDependency[Services]) -> Response | Template:
        """The whole unshipped remainder, or (line + quantity) some units of one line."""
        user = current_user(request)
        order = await services.reader.get(order_id)
        if order is None:
            return _no_such_order(request, order_id)
        lines = None
        if (data.get("line") or "").isdigit() and (data.get("quantity") or "").isdigit():
            lines = (CancelLine(line=int(data["line"]), qty=int(data["quantity"])),)

        async def build():
            return CancelOrder(order_id=order.id, lines=lines)

        body = {"line": data.get("line"), "quantity": data.get("quantity")}
        try:
            await services.operations.run_keyed(user.actor, f"{user.actor}\nPOST\n/ui/orders/{order.id}/cancel",
                                                 _key(data), body, build)
        except (Conflict, InvalidCommand, NotFound) as exc:
            return await self._render(request, services, order, notice=None, status_code=409,
                                      error=f"Not cancelled: {getattr(exc, 'detail', exc)}")
        back = data.get("back") if (data.get("back") or "").startswith("/ui/") else f"/ui/orders/{order.id}"
        return Redirect(back + ("&" if "?" in back else "?") + "cancelled=1", status_code=303)

    @get("/packing-slip.pdf")
    async def packing_slip_pdf(self, order_id: IdPath, services: NamedDependency[Services],
                               shipment_id: Annotated[str | None, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None
                               ) -> Response:
        order = await services.reader.get(order_id)
        if order is None or (shipment_id and not any(x["id"] == shipment_id for x in order.shipments)):
            return Response("no such order or shipment", status_code=404, media_type="text/plain")
        skus = sorted({line.sku for line in order.lines if line.sku})
        names = {i.sku: i.details.get("name") for i in await services.store.inventory(skus) if i}
        pdf = packing_slip(order, merchant=services.settings.merchant_name, names=names, shipment_id=shipment_id)
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="packing-slip-{order.number}.pdf"'})

    @get("/labels.pdf")
    async def labels_pdf(self, order_id: IdPath, services: NamedDependency[Services],
                         shipment_id: Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")]) -> Response:
        """A shipment's GS1-128 SSCC carton labels (api/pdf.py, as the API's labels.pdf)."""
        from api.pdf import carton_labels

        order = await services.reader.get(order_id)
        shipment = next((x for x in order.shipments if x["id"] == shipment_id), None) if order else None
        if shipment is None or not any(c.get("sscc") for c in shipment.get("cartons") or []):
            return Response("no such shipment with SSCC cartons", status_code=404, media_type="text/plain")
        pdf = carton_labels(order, shipment, merchant=services.settings.merchant_name)
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="labels-{shipment_id}.pdf"'})

    @get("/pick-list.pdf")
    async def pick_list_pdf(self, order_id: IdPath, services: NamedDependency[Services]) -> Response:
        order = await services.reader.get(order_id)
        if order is None:
            return Response("no such order", status_code=404, media_type="text/plain")
        wanted = list(reserved_by_sku(order))
        inventory = dict(zip(wanted, await services.store.inventory(wanted), strict=True))
        pdf = pick_list(order, pick_lines(order, inventory), merchant=services.settings.merchant_name)
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="pick-list-{order.number}.pdf"'})


async def _edi_documents(services: Services, order_id: str) -> list | None:
    """The order's outgoing EDI documents (997, 855, 856, 810), newest
    first; None while PostgreSQL cannot be read (the page still works)."""
    from persistence import edi

    merchant = services.store.keys.merchant
    try:
        rows, _ = await services.reader.pg_call(lambda conn: conn.run_sync(
            lambda c: edi.list_documents(c, merchant, edi.DocumentFilter(order_id=order_id), 50, 0)))
    except OnhandError:
        return None
    return rows


def _no_such_order(request: Request, order_id: str) -> Template:
    return page(request, "error.html", title="No such order", status_code=404,
                message=f"There is no order {order_id}.")


def _key(data: dict[str, str]) -> str:
    """The form's Idempotency-Key (a page load's), so a double submit is one change."""
    key = (data.get("idempotency_key") or "").strip()
    return key if 8 <= len(key) <= 64 and key.isalnum() else uuid.uuid4().hex


def _notice(request: Request) -> str | None:
    if shp := request.query_params.get("shipped"):
        return f"Shipment {shp} recorded."
    if request.query_params.get("cancelled"):
        return "Cancelled."
    return None


def _quote(value: Any) -> str:
    from urllib.parse import quote

    return quote(str(value), safe="")


async def _customer_names(services: Services, orders: list[Order]) -> dict[str, str]:
    ids = sorted({o.header["customer_id"] for o in orders if o.header.get("customer_id")})
    if not ids:
        return {}
    prefix = services.store.keys.prefix
    async with services.redis.pipeline(transaction=False) as pipe:
        for cid in ids:
            pipe.hget(f"{prefix}:d:customer:{cid}", "doc")
        raws = await pipe.execute()
    import msgspec

    out = {}
    for cid, raw in zip(ids, raws, strict=True):
        if raw:
            doc = msgspec.json.decode(raw)
            out[cid] = doc.get("company") or doc.get("name") or cid
    return out


def _row(o: Order, names: dict[str, str]) -> dict[str, Any]:
    h = o.header
    return {"id": o.id, "number": o.number, "channel": o.channel.value, "status": o.status.value,
            "po_number": h.get("po_number"), "customer": names.get(h.get("customer_id") or "", h.get("customer_id")),
            "customer_id": h.get("customer_id"), "created": rfc3339(h.get("created_at_ms"))[:16].replace("T", " "),
            "units": sum(line.quantity for line in o.lines),
            "backordered": sum(line.backordered for line in o.lines),
            "tracking": ", ".join(x.get("tracking_number") for x in o.shipments if x.get("tracking_number"))}


def _timeline(order: Order, ledger: list) -> list[dict[str, Any]]:
    """The order's events, oldest first: its creation, every movement of its
    units from the ledger (grouped by operation), shipments and returns."""
    events: dict[str, dict[str, Any]] = {}
    for row in ledger:
        e = events.setdefault(row.event_id, {"at": row.at.timestamp() * 1000, "actor": row.actor, "parts": []})
        e["parts"].append(f"{row.reason} {row.units} × {row.sku}")
    items = [{"at": e["at"], "what": "; ".join(e["parts"]), "actor": e["actor"]} for e in events.values()]
    for x in order.shipments:
        lines = ", ".join(f"{line['quantity']} × {line['sku']}" for line in x.get("lines") or [])
        tracking = " ".join(p for p in (x.get("carrier"), x.get("tracking_number")) if p)
        items.append({"at": x.get("shipped_at_ms") or 0, "what": f"shipment {x['id']} by {x.get('method')}"
                      f"{' (' + tracking + ')' if tracking else ''}: {lines}", "actor": ""})
    for r in order.returns:
        lines = ", ".join(f"{line['quantity']} × {line['sku']}{' restocked' if line.get('restock') else ''}"
                          for line in r.get("lines") or [])
        items.append({"at": r.get("returned_at_ms") or 0, "what": f"return {r['id']}: {lines}", "actor": ""})
    # first among equals: the reservation happened in the same instant
    items.insert(0, {"at": order.header.get("created_at_ms") or 0, "what": "order accepted", "actor": ""})
    items.sort(key=lambda e: e["at"])
    for e in items:
        e["when"] = rfc3339(e["at"]).replace("T", " ")[:19]
    return items
