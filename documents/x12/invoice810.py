"""810 invoices, one per shipment of an EDI order.

BIG (invoice date and number, PO date, PO number in BIG04), N1 ship-to and
supplier, ITD with the profile's terms (net 30: due 30 days after the
invoice date; ITD06 the due date, ITD07 the net days), DTM*011 ship date,
IT1 per invoiced line (the PO1's line number, unit and id pairs), SAC
allowances or charges, TDS01 the total in implied cents (2 decimals, no
point), CAD carrier and bill of lading, CTT the IT1 count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from documents.x12.reader import TransactionSet
from documents.x12.writer import Seg, text

CENT = Decimal("0.01")


def cents(amount: Decimal) -> str:
    """An amount as X12 implied-decimal cents ("3875.30" -> "387530")."""
    return str(int((amount.quantize(CENT, rounding=ROUND_HALF_UP) * 100)))


@dataclass
class InvoiceLine:
    line_no: str
    quantity: int
    uom: str
    unit_price: Decimal
    ids: list[tuple[str, str]] = field(default_factory=list)

    @property
    def amount(self) -> Decimal:
        return (self.unit_price * self.quantity).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Allowance:
    #: SAC01: A allowance (subtracted), C charge (added)
    kind: str
    code: str
    amount: Decimal
    description: str = ""


def invoice_total(lines: list[InvoiceLine], allowances: list[Allowance]) -> Decimal:
    """The lines' amounts, less allowances, plus charges."""
    total = sum((line.amount for line in lines), Decimal(0))
    for a in allowances:
        total += a.amount if a.kind == "C" else -a.amount
    return total.quantize(CENT)


@dataclass
class InvoiceDoc:
    number: str
    date: str
    po_number: str
    po_date: str = ""
    net_days: int = 0
    due_date: str = ""
    ship_date: str = ""
    currency: str = "USD"
    supplier_name: str = ""
    ship_to: dict = field(default_factory=dict)
    carrier: str = ""
    bill_of_lading: str = ""
    lines: list[InvoiceLine] = field(default_factory=list)
    allowances: list[Allowance] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return invoice_total(self.lines, self.allowances)


def segments(inv: InvoiceDoc) -> list[Seg]:
    out: list[Seg] = [["BIG", inv.date, text(inv.number, 22), inv.po_date, text(inv.po_number, 22)]]
    if inv.currency:
        out.append(["CUR", "SE", inv.currency])
    if inv.ship_to:
        n1 = ["N1", "ST", text(inv.ship_to.get("name"), 60)]
        if inv.ship_to.get("location_id"):
            n1 += [inv.ship_to.get("location_qualifier") or "92", text(inv.ship_to["location_id"], 80)]
        out.append(n1)
    out.append(["N1", "SU", text(inv.supplier_name, 60)])
    out.append(["ITD", "05", "3", "", "", "", inv.due_date, str(inv.net_days)])
    if inv.ship_date:
        out.append(["DTM", "011", inv.ship_date])
    for line in inv.lines:
        it1 = ["IT1", text(line.line_no, 20), str(line.quantity), line.uom or "EA",
               format(line.unit_price.normalize(), "f"), ""]
        for q, v in line.ids:
            it1 += [q, text(v, 48)]
        out.append(it1)
    out.append(["TDS", cents(inv.total)])
    for a in inv.allowances:
        out.append(["SAC", a.kind, a.code, "", "", cents(a.amount), "", "", "", "", "", "", "", "", "",
                    text(a.description, 80)])
    if inv.carrier or inv.bill_of_lading:
        out.append(["CAD", "M", "", "", "", text(inv.carrier, 35), "",
                    "BM" if inv.bill_of_lading else "", text(inv.bill_of_lading, 30)])
    out.append(["CTT", str(len(inv.lines))])
    return out


@dataclass
class ReadInvoice:
    date: str = ""
    number: str = ""
    po_date: str = ""
    po_number: str = ""
    terms: list[str] = field(default_factory=list)
    lines: list[InvoiceLine] = field(default_factory=list)
    allowances: list[Allowance] = field(default_factory=list)
    total_cents: int | None = None
    declared_lines: int | None = None
    shipped_units: int | None = None

    @property
    def total(self) -> Decimal | None:
        return None if self.total_cents is None else (Decimal(self.total_cents) / 100).quantize(CENT)

    @property
    def computed_total(self) -> Decimal:
        """What the lines and allowances add up to (to hold TDS01 against)."""
        return invoice_total(self.lines, self.allowances)


def parse(ts: TransactionSet) -> ReadInvoice:
    """Reads an 810 (a partner's, or ours for round trips)."""
    inv = ReadInvoice()
    for seg in ts.body:
        sid = seg.id
        if sid == "BIG":
            inv.date, inv.number, inv.po_date, inv.po_number = seg.get(1), seg.get(2), seg.get(3), seg.get(4)
        elif sid == "ITD":
            inv.terms = [seg.get(i) for i in range(1, 8)]
        elif sid == "IT1":
            ids = [(seg.get(i), seg.get(i + 1)) for i in range(6, len(seg.elements), 2) if seg.get(i)]
            inv.lines.append(InvoiceLine(seg.get(1), int(Decimal(seg.get(2) or "0")), seg.get(3),
                                         Decimal(seg.get(4) or "0"), ids))
        elif sid == "SAC":
            raw = seg.get(5)
            inv.allowances.append(Allowance(seg.get(1), seg.get(2),
                                            Decimal(raw or "0") / 100, seg.get(15)))
        elif sid == "TDS":
            inv.total_cents = int(seg.get(1)) if seg.get(1).isdigit() else None
        elif sid == "ISS":
            inv.shipped_units = int(Decimal(seg.get(1))) if seg.get(1) else None
        elif sid == "CTT":
            inv.declared_lines = int(seg.get(1)) if seg.get(1).isdigit() else None
    return inv
