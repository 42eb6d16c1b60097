"""Packing slips as PDF (fpdf2): merchant, order number, the customer's PO
number, ship-to, the lines shipped, the lines still backordered, and units
sold beyond stock that staff have yet to resolve (exception units: not a
backorder, which will ship by itself when stock arrives)."""

from __future__ import annotations

from typing import Any

from fpdf import FPDF

from api.views import rfc3339
from engine.model import Order


def _latin1(text: Any) -> str:
    # The built-in PDF fonts cover Latin-1 only; other characters print as '?'.
    return str(text if text is not None else "").encode("latin-1", "replace").decode("latin-1")


def _address(ship_to: dict[str, Any] | None) -> list[str]:
    if not ship_to:
        return ["(no ship-to address)"]
    city = " ".join(p for p in (ship_to.get("zip"), ship_to.get("city")) if p)
    parts = [ship_to.get("name"), ship_to.get("company"),
             f"Store {ship_to['location_id']}" if ship_to.get("location_id") else None, ship_to.get("address1"),
             ship_to.get("address2"), city, ship_to.get("province"),
             ship_to.get("country") or ship_to.get("country_code"), ship_to.get("phone")]
    return [p for p in parts if p]


def packing_slip(order: Order, *, merchant: str, names: dict[str, str | None],
                 shipment_id: str | None = None) -> bytes:
    h = order.header
    shipments = [x for x in order.shipments if shipment_id is None or x["id"] == shipment_id]
    shipped: dict[str, int] = {}
    for x in shipments:
        for line in x.get("lines") or []:
            shipped[line["sku"]] = shipped.get(line["sku"], 0) + int(line["quantity"])
    backordered: dict[str, int] = {}
    exceptions: dict[str, int] = {}
    for line in order.lines:
        key = line.sku or "(no SKU)"
        if line.backordered:
            backordered[key] = backordered.get(key, 0) + line.backordered
        if line.exception:
            exceptions[key] = exceptions.get(key, 0) + line.exception

    pdf = _document(f"Packing slip {order.number}", merchant, "PACKING SLIP")
    pdf.ln(2)
    facts = [("Order number", str(order.number)), ("Order id", order.id)]
    if h.get("po_number"):
        facts.append(("PO number", h["po_number"]))
    facts.append(("Order date", rfc3339(h.get("created_at_ms"))[:10]))
    for x in shipments:
        tracking = " ".join(p for p in (x.get("carrier"), x.get("tracking_number")) if p)
        facts.append((f"Shipment {x['id']}", f"{x.get('method') or ''} {tracking}".strip()))
    _facts(pdf, facts)
    pdf.ln(3)
    pdf.set_font("helvetica", "B", 10)
    pdf.cell(0, 6, "Ship to", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 10)
    for line in _address(h.get("ship_to")):
        pdf.cell(0, 5, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _table(pdf, "Shipped", shipped, names, empty="nothing shipped yet")
    _cartons(pdf, shipments)
    pdf.ln(3)
    _table(pdf, "Still backordered", backordered, names, empty="nothing backordered")
    if exceptions:
        pdf.ln(3)
        _table(pdf, "Not in stock, being resolved by our staff", exceptions, names, empty="")
    return bytes(pdf.output())


def _cartons(pdf: FPDF, shipments: list[dict[str, Any]]) -> None:
    """Each carton of the shipments with its SSCC and contents."""
    cartons = [(x, c) for x in shipments for c in x.get("cartons") or []]
    if not cartons:
        return
    pdf.ln(3)
    pdf.set_font("helvetica", "B", 11)
    pdf.cell(0, 7, "Cartons", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 9)
    with pdf.table(col_widths=(20, 55, 100), text_align=("LEFT", "LEFT", "LEFT")) as table:
        header = table.row()
        for cell in ("Carton", "SSCC", "Contents"):
            header.cell(cell)
        for i, (x, c) in enumerate(cartons, 1):
            row = table.row()
            row.cell(f"{c.get('number') or i} of {len(x.get('cartons') or [])}")
            row.cell(c.get("sscc") or "(none)")
            row.cell(_latin1(", ".join(f"{l['sku']} x {l['quantity']}" for l in c.get("lines") or [])))


def carton_labels(order: Order, shipment: dict[str, Any], *, merchant: str) -> bytes:
    """The shipment's GS1-128 carton labels (documents/labels.py)."""
    from documents.labels import CartonLabel
    from documents.labels import carton_labels as render

    cartons = shipment.get("cartons") or []
    reference = shipment.get("bill_of_lading") or shipment.get("tracking_number") or ""
    ship_to = order.header.get("ship_to") or {}
    to_lines = _address(ship_to)
    labels = [CartonLabel(sscc=c["sscc"], number=int(c.get("number") or i), of=len(cartons),
                          po_number=order.header.get("po_number") or "",
                          carrier=shipment.get("carrier") or shipment.get("method") or "",
                          reference=f"BOL {reference}" if shipment.get("bill_of_lading") else reference,
                          ship_from=[merchant], ship_to=to_lines,
                          contents=[f"{l['sku']} x {l['quantity']}" for l in c.get("lines") or []])
              for i, c in enumerate(cartons, 1) if c.get("sscc")]
    return render(labels, title=f"Carton labels {shipment['id']}")


def _document(title: str, merchant: str, heading: str) -> FPDF:
    pdf = FPDF(format="Letter")
    pdf.set_title(title)
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 9, _latin1(merchant), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 12)
    pdf.cell(0, 7, heading, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 10)
    return pdf


def _facts(pdf: FPDF, facts: list[tuple[str, str]]) -> None:
    for label, value in facts:
        pdf.set_font("helvetica", "B", 10)
        pdf.cell(40, 6, _latin1(label))
        pdf.set_font("helvetica", "", 10)
        pdf.cell(0, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")


def _table(pdf: FPDF, title: str, rows: dict[str, int], names: dict[str, str | None], *, empty: str) -> None:
    pdf.set_font("helvetica", "B", 11)
    pdf.cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 10)
    if not rows:
        pdf.cell(0, 6, _latin1(empty), new_x="LMARGIN", new_y="NEXT")
        return
    with pdf.table(col_widths=(40, 110, 25), text_align=("LEFT", "LEFT", "RIGHT")) as table:
        header = table.row()
        for cell in ("SKU", "Item", "Quantity"):
            header.cell(cell)
        for sku, qty in rows.items():
            row = table.row()
            row.cell(_latin1(sku))
            row.cell(_latin1(names.get(sku) or ""))
            row.cell(str(qty))


def pick_list(order: Order, lines, *, merchant: str) -> bytes:
    """The pick list (engine/picking.py's lines) as a PDF: per SKU the
    reserved quantity in cases and eaches."""
    h = order.header
    pdf = _document(f"Pick list {order.number}", merchant, "PICK LIST")
    facts = [("Order number", str(order.number)), ("Channel", order.channel.value)]
    if h.get("po_number"):
        facts.append(("PO number", h["po_number"]))
    _facts(pdf, facts)
    pdf.ln(3)
    if not lines:
        pdf.cell(0, 6, "nothing reserved to pick", new_x="LMARGIN", new_y="NEXT")
        return bytes(pdf.output())
    with pdf.table(col_widths=(35, 75, 20, 20, 20, 20),
                   text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT")) as table:
        header = table.row()
        for cell in ("SKU", "Item", "Units", "Case pack", "Cases", "Eaches"):
            header.cell(cell)
        for p in lines:
            row = table.row()
            for cell in (p.sku, p.name or "", p.quantity, p.case_pack or "", p.cases, p.eaches):
                row.cell(_latin1(cell))
    return bytes(pdf.output())
