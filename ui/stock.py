"""Receiving stock (with a preview of the backorders it fills, oldest first,
before it is confirmed) and returns from either channel."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.services import Services
from api.returns import return_command
from engine.commands import ReceiveStock, ReturnLineRequest, SkuQty
from engine.errors import Conflict, InvalidCommand, NotFound
from engine.model import MAX_QTY, MAX_RECEIPT_LINES
from engine.ordering import preview_fills
from ui.base import current_user, page

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
_SKU = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")


def parse_lines(text: str) -> tuple[list[tuple[str, int]], list[str]]:
    """``SKU quantity`` per line (tab, comma, semicolon or spaces between):
    the lines, summed per SKU in order, and what could not be read."""
    totals: dict[str, int] = {}
    bad = []
    for n, raw in enumerate(text.splitlines(), start=1):
        raw = raw.strip()
        if not raw:
            continue
        parts = re.split(r"[\t,;]+|\s+", raw)
        if len(parts) != 2 or not _SKU.match(parts[0]) or not parts[1].isdigit() or not 1 <= int(parts[1]) <= MAX_QTY:
            bad.append(f"row {n}: “{raw[:80]}” is not SKU and quantity")
            continue
        totals[parts[0]] = totals.get(parts[0], 0) + int(parts[1])
    return list(totals.items()), bad


class StockController(Controller):
    path = "/ui"

    @get("/receive")
    async def receive_form(self, request: Request) -> Template:
        return page(request, "receive.html", title="Receive stock", lines_text="", reference="", preview=None,
                    idempotency_key=uuid.uuid4().hex)

    @post("/receive/preview", status_code=200)
    async def receive_preview(self, request: Request, data: Form, services: NamedDependency[Services]) -> Template:
        return await self._preview(request, services, data)

    async def _preview(self, request: Request, services: Services, data: dict[str, str], *,
                       error: str | None = None, status_code: int = 200) -> Template:
        text = data.get("lines", "")[:200_000]
        reference = (data.get("reference") or "").strip()[:128]
        lines, bad = parse_lines(text)
        found = dict(zip([s for s, _ in lines], await services.store.inventory([s for s, _ in lines]), strict=True))
        unknown = [s for s, _ in lines if found.get(s) is None]
        preview = []
        for sku, qty in lines:
            inv = found.get(sku)
            if inv is None:
                continue
            fills = preview_fills(inv, qty, await services.store.waiting_lines(sku))
            numbers = {o.id: o.number for o in [await services.reader.get(f.order_id) for f in fills] if o}
            preview.append({"sku": sku, "quantity": qty, "on_hand_after": inv.on_hand + qty,
                            "fills": [{"order_id": f.order_id, "number": numbers.get(f.order_id), "line": f.line + 1,
                                       "channel": f.channel, "units": f.units} for f in fills],
                            "left": qty - sum(f.units for f in fills)})
        problems = bad + [f"unknown SKU {s}" for s in unknown]
        if not lines and not bad:
            problems.append("enter at least one line: SKU and quantity")
        if len(lines) > MAX_RECEIPT_LINES:
            problems.append(f"a receipt has at most {MAX_RECEIPT_LINES} lines")
        return page(request, "receive.html", title="Receive stock", status_code=400 if problems else status_code,
                    lines_text=text, reference=reference, preview=preview, problems=problems,
                    idempotency_key=data.get("idempotency_key") or uuid.uuid4().hex, error=error)

    @post("/receive", status_code=303)
    async def receive(self, request: Request, data: Form, services: NamedDependency[Services]) -> Response | Template:
        user = current_user(request)
        lines, bad = parse_lines(data.get("lines", "")[:200_000])
        reference = (data.get("reference") or "").strip()[:128] or None
        if bad or not lines:
            return await self._preview(request, services, data)

        async def build():
            return ReceiveStock(receipt_id="rcp_" + uuid.uuid4().hex[:16], reference=reference,
                                lines=tuple(SkuQty(sku=s, qty=q) for s, q in lines))

        key = (data.get("idempotency_key") or "")[:64] or uuid.uuid4().hex
        try:
            result = await services.operations.run_keyed(user.actor, f"{user.actor}\nPOST\n/ui/receive", key,
                                                         {"reference": reference, "lines": lines}, build)
        except (Conflict, NotFound, InvalidCommand) as exc:
            return await self._preview(request, services, data, error=f"Not received: {getattr(exc, 'detail', exc)}",
                                       status_code=409)
        fills = result.fills + result.later_fills
        receipt = result.data["receipt"]["id"]
        return Redirect(f"/ui/receive/done?receipt={receipt}&units={sum(q for _, q in lines)}&fills={len(fills)}",
                        status_code=303)

    @get("/receive/done")
    async def received(self, request: Request) -> Template:
        q = request.query_params
        return page(request, "receive.html", title="Receive stock", lines_text="", reference="", preview=None,
                    idempotency_key=uuid.uuid4().hex,
                    notice=f"Receipt {q.get('receipt', '')[:40]} recorded: {q.get('units', '')[:12]} units, "
                           f"{q.get('fills', '')[:6]} backorder line(s) filled.")

    # ------------------------------------------------------------ returns

    @get("/returns")
    async def returns_form(self, request: Request, services: NamedDependency[Services]) -> Template:
        ref = (request.query_params.get("order") or "").strip()[:128]
        order, error = (await self._find_order(services, ref)) if ref else (None, None)
        return page(request, "returns.html", title="Returns", ref=ref, order=order, error=error,
                    idempotency_key=uuid.uuid4().hex)

    async def _find_order(self, services: Services, ref: str):
        """An order by id, number or PO number (any channel)."""
        from persistence.queries import OrderFilter

        if ref.startswith(("ord_", "shp_")):
            order = await services.reader.get(ref)
        elif ref.isdigit() and len(ref) < 18:
            found, _ = await services.reader.list(OrderFilter(number=int(ref)), limit=1, offset=0)
            order = found[0] if found else None
        else:
            found, total = await services.reader.list(OrderFilter(po_number=ref), limit=2, offset=0)
            order = found[0] if total == 1 else None
            if total > 1:
                return None, f"Several orders have PO {ref}: give the order number."
        return order, None if order else f"No order {ref}."

    @post("/returns", status_code=303)
    async def record_return(self, request: Request, data: Form,
                            services: NamedDependency[Services]) -> Response | Template:
        user = current_user(request)
        order = await services.reader.get((data.get("order_id") or "")[:64])
        if order is None:
            return page(request, "returns.html", title="Returns", ref="", order=None, status_code=404,
                        error="No such order.", idempotency_key=uuid.uuid4().hex)
        lines = []
        for i, line in enumerate(order.lines):
            raw = (data.get(f"qty_{i}") or "").strip()
            if raw.isdigit() and int(raw) > 0 and line.sku:
                lines.append(ReturnLineRequest(sku=line.sku, qty=int(raw), restock=data.get(f"restock_{i}") == "on"))
        if not lines:
            return page(request, "returns.html", title="Returns", ref=order.id, order=order, status_code=400,
                        error="Enter the units returned on at least one line.", idempotency_key=uuid.uuid4().hex)
        reason = (data.get("reason") or "").strip()[:500] or None

        async def build():
            return await return_command(services, order, reason, tuple(lines))

        key = (data.get("idempotency_key") or "")[:64] or uuid.uuid4().hex
        body = {"order_id": order.id, "reason": reason, "lines": [[l.sku, l.qty, l.restock] for l in lines]}
        try:
            await services.operations.run_keyed(user.actor, f"{user.actor}\nPOST\n/ui/returns", key, body, build)
        except (Conflict, NotFound, InvalidCommand) as exc:
            return page(request, "returns.html", title="Returns", ref=order.id, order=order, status_code=409,
                        error=f"Not recorded: {getattr(exc, 'detail', exc)}", idempotency_key=uuid.uuid4().hex)
        return Redirect(f"/ui/orders/{order.id}?returned=1", status_code=303)
