"""The documents onhand sends: 997 per received group, 855 per imported PO,
856 and 810 per shipment of an EDI order. Each is built from the system of
record (the order as the reservation left it, the shipment with its cartons,
the invoice) and recorded once with its control numbers
(persistence/edi.py); writing it to the outbox folder is its sending.

An EDI order's header keeps what the answers need: per order line the PO1
it came from (``po_line``, ``uom``, ``ordered``, ``price``, ``pack``,
``ids``), and under ``edi`` the PO's date, version, the partner's and our
identities, and the PO1 lines that were rejected (never on the order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from documents.x12 import ack855, ack997, asn856, invoice810
from documents.x12.reader import Group, Interchange
from documents.x12.writer import Envelope, GroupOut, TransactionSetOut, date8, interchange, set_control, time4
from engine.model import Order
from onhand.settings import Settings
from persistence import edi as pg
from persistence.models import EdiDocument

FUNCTIONAL_ID = {"997": "FA", "855": "PR", "856": "SH", "810": "IN"}


@dataclass(frozen=True)
class Identity:
    qualifier: str
    id: str
    gs_id: str


def ours(settings: Settings, addressed: Identity) -> Identity:
    """Our identity: the settings', else the one the partner addressed."""
    if settings.edi_isa_id:
        return Identity(settings.edi_isa_qualifier or "ZZ", settings.edi_isa_id,
                        settings.edi_gs_id or settings.edi_isa_id)
    return addressed


def envelope(us: Identity, them: Identity, version: str, usage: str) -> Envelope:
    return Envelope(sender_qualifier=us.qualifier, sender_id=us.id, receiver_qualifier=them.qualifier,
                    receiver_id=them.id, gs_sender=us.gs_id, gs_receiver=them.gs_id,
                    version=version or "004010", usage=usage if usage in ("P", "T") else "P")


def order_envelope(settings: Settings, header: dict) -> Envelope:
    edi = header.get("edi") or {}
    them = Identity(*edi["partner"], edi.get("partner_gs") or edi["partner"][1])
    us = ours(settings, Identity(*edi["us"]))
    return envelope(us, them, edi.get("version") or "004010", edi.get("usage") or settings.edi_usage)


def _render(env: Envelope, kind: str, bodies: list[list[list[str]]], at: datetime):
    def build(c: pg.Controls) -> bytes:
        sets = [TransactionSetOut(kind, set_control(n), body) for n, body in zip(c.sets, bodies, strict=True)]
        return interchange(env, c.interchange, [GroupOut(FUNCTIONAL_ID[kind], c.groups[0], sets)], at)
    return build


def partner_label(env: Envelope) -> str:
    return f"{env.receiver_qualifier}:{env.receiver_id}"


# ---------------------------------------------------------------- 997


def record_997(conn: Connection, settings: Settings, ic: Interchange, group: Group,
               ack: ack997.GroupAck, customer_id: str | None, at: datetime) -> EdiDocument:
    them = Identity(ic.sender_qualifier, ic.sender_id, group.sender)
    us = ours(settings, Identity(ic.receiver_qualifier, ic.receiver_id, group.receiver))
    env = envelope(us, them, group.version, ic.usage)
    key = f"997:{ic.sender_qualifier}:{ic.sender_id}:{ic.control}:{group.control}"
    doc, _ = pg.record_document(conn, settings.merchant, kind="997", key=key, groups=1, sets=1,
                                build=_render(env, "997", [ack997.segments(ack)], at),
                                customer_id=customer_id, partner=partner_label(env))
    return doc


# ---------------------------------------------------------------- 855


def po_ack(order: Order, at: datetime) -> ack855.PoAck:
    h = order.header
    edi = h.get("edi") or {}
    statics = h.get("lines") or []
    placed = []
    for i, line in enumerate(order.lines):
        st = statics[i] if i < len(statics) else {}
        placed.append((st.get("pos", i), ack855.AckLine(
            line_no=st.get("po_line", str(i + 1)), quantity=int(st.get("ordered") or line.quantity),
            uom=st.get("uom") or "EA", price=_dec(st.get("price")), ids=[tuple(p) for p in st.get("ids") or []],
            units=line.quantity, reserved=line.reserved + line.shipped, backordered=line.backordered,
            cancelled=line.cancelled, key=f"o{i}")))
    for j, r in enumerate(edi.get("rejected") or []):
        placed.append((r.get("pos", 0), ack855.AckLine(
            line_no=r.get("po_line", ""), quantity=int(r.get("ordered") or 0), uom=r.get("uom") or "EA",
            price=_dec(r.get("price")), ids=[tuple(p) for p in r.get("ids") or []],
            units=int(r.get("units") or r.get("ordered") or 0), rejected=r.get("reason") or "rejected",
            key=f"r{j}")))
    placed.sort(key=lambda x: x[0])
    return ack855.PoAck(po_number=h.get("po_number") or "", po_date=edi.get("po_date") or "",
                        ack_date=date8(at), lines=[x[1] for x in placed])


def refused_ack(header: dict, at: datetime) -> ack855.PoAck:
    """The 855 of an order refused as a whole (all_or_nothing without stock):
    every line rejected."""
    edi = header.get("edi") or {}
    lines = []
    keyed = [(f"o{i}", st) for i, st in enumerate(header.get("lines") or [])]
    keyed += [(f"r{j}", st) for j, st in enumerate(edi.get("rejected") or [])]
    for key, st in keyed:
        lines.append((st.get("pos", 0), ack855.AckLine(
            line_no=st.get("po_line", ""), quantity=int(st.get("ordered") or 0), uom=st.get("uom") or "EA",
            price=_dec(st.get("price")), ids=[tuple(p) for p in st.get("ids") or []],
            units=int(st.get("units") or st.get("ordered") or 0), rejected="refused", key=key)))
    lines.sort(key=lambda x: x[0])
    return ack855.PoAck(po_number=header.get("po_number") or "", po_date=edi.get("po_date") or "",
                        ack_date=date8(at), lines=[x[1] for x in lines])


def record_855(conn: Connection, settings: Settings, header: dict, ack: ack855.PoAck,
               order_id: str | None, at: datetime) -> EdiDocument:
    env = order_envelope(settings, header)
    key = f"855:{header.get('customer_id')}:{(header.get('po_number') or '').lower()}"
    doc, _ = pg.record_document(conn, settings.merchant, kind="855", key=key, groups=1, sets=1,
                                build=_render(env, "855", [ack855.segments(ack)], at),
                                customer_id=header.get("customer_id"), order_id=order_id,
                                po_number=header.get("po_number"), partner=partner_label(env))
    return doc


# ---------------------------------------------------------------- 856 and 810


def _item_line(order: Order, idx: int) -> dict:
    statics = order.header.get("lines") or []
    return statics[idx] if 0 <= idx < len(statics) else {}


def ship_notice(settings: Settings, order: Order, shipment: dict, at: datetime) -> asn856.ShipNotice:
    h = order.header
    edi = h.get("edi") or {}
    sku_line: dict[str, int] = {}
    for line in shipment.get("lines") or []:
        sku_line.setdefault(line["sku"], int(line.get("line", 0)))
    cartons = []
    for carton in shipment.get("cartons") or []:
        items = []
        for line in carton.get("lines") or []:
            st = _item_line(order, sku_line.get(line["sku"], -1))
            items.append(asn856.AsnItem(line_no=st.get("po_line", ""), units=int(line["quantity"]),
                                        ids=[tuple(p) for p in st.get("ids") or []] or [("VN", line["sku"])]))
        cartons.append(asn856.AsnCarton(sscc=carton.get("sscc"), items=items, pallet=carton.get("pallet")))
    pallets = [asn856.AsnPallet(n, code) for n, code in enumerate(shipment.get("pallet_ssccs") or [], 1)]
    shipped_at = datetime.fromtimestamp((shipment.get("shipped_at_ms") or 0) / 1000, tz=UTC)
    weight = shipment.get("weight_lb")
    if weight is None and cartons:
        weights = [c.get("weight_lb") for c in shipment.get("cartons") or []]
        weight = sum(weights) if all(w is not None for w in weights) else None
    return asn856.ShipNotice(
        shipment_id=shipment["id"], date=date8(at), time=time4(at), ship_date=date8(shipped_at),
        po_number=h.get("po_number") or "", po_date=edi.get("po_date") or "",
        carrier=shipment.get("carrier") or "", service=shipment.get("service") or "",
        transport="M" if shipment.get("method") == "freight" else "U",
        bill_of_lading=shipment.get("bill_of_lading") or "", tracking_number=shipment.get("tracking_number") or "",
        weight_lb="" if weight is None else _number(weight), ship_to=h.get("ship_to") or {},
        ship_from_name=settings.merchant_name, cartons=cartons, pallets=pallets)


def invoice_doc(settings: Settings, order: Order, shipment: dict, invoice: Any) -> invoice810.InvoiceDoc:
    """The 810 of an invoice (persistence.models.Invoice row). Lines are
    invoiced in the PO's unit when the shipped units are whole packs of it."""
    h = order.header
    edi = h.get("edi") or {}
    lines = []
    for line in invoice.lines:
        st = _item_line(order, int(line.get("line", -1)))
        units, each = int(line["quantity"]), _dec(line.get("unit_price")) or Decimal(0)
        factor = int(st.get("units_per") or 1)
        if factor > 1 and units % factor == 0 and _dec(st.get("price")) is not None:
            qty, uom, price = units // factor, st.get("uom") or "EA", _dec(st.get("price"))
        else:
            qty, uom, price = units, "EA", each
        lines.append(invoice810.InvoiceLine(line_no=st.get("po_line", ""), quantity=qty, uom=uom,
                                            unit_price=price, ids=[tuple(p) for p in st.get("ids") or []]))
    from persistence.invoices import NET_DAYS

    return invoice810.InvoiceDoc(
        number=str(invoice.number), date=invoice.invoice_date.strftime("%Y%m%d"),
        po_number=h.get("po_number") or "", po_date=edi.get("po_date") or "",
        net_days=NET_DAYS.get(invoice.payment_terms or "", 0), due_date=invoice.due_date.strftime("%Y%m%d"),
        ship_date=invoice.invoice_date.strftime("%Y%m%d"), currency=invoice.currency,
        supplier_name=settings.merchant_name, ship_to=h.get("ship_to") or {},
        carrier=shipment.get("carrier") or "", bill_of_lading=shipment.get("bill_of_lading") or "",
        lines=lines)


def record_856(conn: Connection, settings: Settings, order: Order, shipment: dict, at: datetime) -> EdiDocument:
    return _record_for_shipment(conn, settings, "856", order, shipment,
                                asn856.segments(ship_notice(settings, order, shipment, at)), at)


def record_810(conn: Connection, settings: Settings, order: Order, shipment: dict, invoice: Any,
               at: datetime) -> EdiDocument:
    return _record_for_shipment(conn, settings, "810", order, shipment,
                                invoice810.segments(invoice_doc(settings, order, shipment, invoice)), at)


def _record_for_shipment(conn: Connection, settings: Settings, kind: str, order: Order, shipment: dict,
                         body: list[list[str]], at: datetime) -> EdiDocument:
    env = order_envelope(settings, order.header)
    doc, _ = pg.record_document(
        conn, settings.merchant, kind=kind, key=f"{kind}:{shipment['id']}", groups=1, sets=1,
        build=_render(env, kind, [body], at), customer_id=order.header.get("customer_id"), order_id=order.id,
        shipment_id=shipment["id"], po_number=order.header.get("po_number"), partner=partner_label(env))
    return doc


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def _number(value: float) -> str:
    return format(Decimal(str(value)).normalize(), "f")
