"""855 purchase order acknowledgments, from the reservation result.

Per PO1 line, ACK segments say what became of it:
- ``IA`` accepted: the units reserved now;
- ``IB`` backordered: the units waiting for stock (backorder, ship_complete);
- ``IQ`` accepted, quantity changed: what was reserved when the rest was
  cancelled (cancel_remainder);
- ``IR`` rejected: a line that could not be mapped to a SKU or was bad, or
  an order refused as a whole (all_or_nothing without the stock).
A line partly reserved and partly backordered has an IA and an IB. BAK02 is
``AD`` when every line is accepted as ordered, ``RJ`` when every line is
rejected, ``AC`` otherwise. Quantities are in the line's unit when they are
whole numbers of it (cases), else in eaches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from documents.x12.reader import TransactionSet
from documents.x12.writer import Seg, text


@dataclass
class AckLine:
    line_no: str
    #: The PO1 as ordered: quantity in ``uom``, price per ``uom``, id pairs.
    quantity: int
    uom: str
    price: Decimal | None
    ids: list[tuple[str, str]]
    #: The line in eaches and what the reservation did with them.
    units: int
    reserved: int = 0
    backordered: int = 0
    cancelled: int = 0
    #: Why the line was rejected (never reached the order), else None.
    rejected: str | None = None
    #: The caller's handle on the line (not written).
    key: str = ""

    def acks(self) -> list[tuple[str, int]]:
        """(ACK01 code, units) for this line."""
        if self.rejected is not None:
            return [("IR", self.units)]
        if self.reserved == self.units:
            return [("IA", self.units)]
        out: list[tuple[str, int]] = []
        if self.backordered:
            if self.reserved:
                out.append(("IA", self.reserved))
            out.append(("IB", self.backordered))
        elif self.reserved:
            out.append(("IQ", self.reserved))
        else:
            out.append(("IR", self.units))
        return out


@dataclass
class PoAck:
    po_number: str
    po_date: str
    ack_date: str
    lines: list[AckLine] = field(default_factory=list)

    @property
    def type(self) -> str:
        codes = [code for line in self.lines for code, _ in line.acks()]
        if codes and all(c == "IR" for c in codes):
            return "RJ"
        if all(line.acks() == [("IA", line.units)] for line in self.lines):
            return "AD"
        return "AC"


def _in_unit(line: AckLine, units: list[int]) -> tuple[str, list[str]]:
    factor = line.units // line.quantity if line.quantity and line.units % line.quantity == 0 else 0
    if factor and all(u % factor == 0 for u in units):
        return line.uom or "EA", [str(u // factor) for u in units]
    return "EA", [str(u) for u in units]


def segments(ack: PoAck) -> list[Seg]:
    out: list[Seg] = [["BAK", "00", ack.type, ack.po_number, ack.po_date, "", "", "", "", ack.ack_date]]
    for line in ack.lines:
        po1 = ["PO1", line.line_no, str(line.quantity), line.uom or "EA",
               _price(line.price), ""]
        for q, v in line.ids:
            po1 += [q, text(v, 48)]
        out.append(po1)
        acks = line.acks()
        uom, qtys = _in_unit(line, [u for _, u in acks])
        for (code, _), qty in zip(acks, qtys, strict=True):
            out.append(["ACK", code, qty, uom])
    out.append(["CTT", str(len(ack.lines)), str(sum(line.quantity for line in ack.lines))])
    return out


def _price(price: Decimal | None) -> str:
    if price is None:
        return ""
    return format(price.normalize(), "f") if price == price.to_integral_value() else format(price, "f")


@dataclass
class ReadAckLine:
    line_no: str
    quantity: int
    uom: str
    acks: list[tuple[str, int, str]]


@dataclass
class ReadPoAck:
    type: str
    po_number: str
    po_date: str
    lines: list[ReadAckLine]
    declared_lines: int | None
    declared_hash: int | None


def parse(ts: TransactionSet) -> ReadPoAck:
    """Reads an 855 (ours, for round trips) back."""
    ack = ReadPoAck("", "", "", [], None, None)
    for seg in ts.body:
        if seg.id == "BAK":
            ack.type, ack.po_number, ack.po_date = seg.get(2), seg.get(3), seg.get(4)
        elif seg.id == "PO1":
            ack.lines.append(ReadAckLine(seg.get(1), int(seg.get(2) or 0), seg.get(3), []))
        elif seg.id == "ACK" and ack.lines:
            ack.lines[-1].acks.append((seg.get(1), int(seg.get(2) or 0), seg.get(3)))
        elif seg.id == "CTT":
            ack.declared_lines = int(seg.get(1)) if seg.get(1).isdigit() else None
            ack.declared_hash = int(seg.get(2)) if seg.get(2).isdigit() else None
    return ack
