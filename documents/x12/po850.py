"""The X12 850 purchase order (4010, 4010VICS, 5010) as a plain value.

Read: BEG (purpose, type, PO number, date), CUR, REF, DTM (ship and cancel
dates), ITD (terms), N1/N3/N4 (ship-to, bill-to, buyer; a store number alone
is common), PO1 with any product id qualifier pairs, CTP prices, PID
descriptions, PO4 packs, CTT (line count and hash total) and AMT. Other
segments are kept out of the value and ignored.

What cannot be trusted is reported, never guessed:
- a bad PO1 (no quantity, a quantity that is not a whole positive number, a
  price that is not a number, no product id) is a line error; the rest of
  the order goes on and the line is reported (997 AK3/AK4, 855 IR);
- a missing PO number or PO date, or a CTT that disagrees with the lines
  (count or hash total), rejects the whole purchase order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from documents.x12 import errors as e
from documents.x12.reader import Segment, TransactionSet

#: Units of measure that count eaches (PO102 is already in units).
EACH_UNITS = frozenset({"EA", "UN", "PC", "PR", "EACH"})
#: Units of measure that count packs of PO401 units (10 CA of 12 are 120 units).
PACK_UNITS = frozenset({"CA", "CS", "CT", "BX", "PK", "PL", "DZ"})
#: DTM qualifiers: requested ship, ship not before / no later, cancel, delivery.
SHIP_DATES = ("010", "037")
CANCEL_DATES = ("001", "038", "063")
DELIVERY_DATES = ("002", "064")


@dataclass
class Party:
    """An N1 loop: role (ST ship-to, BT bill-to, BY buyer), name, location id."""

    role: str
    name: str = ""
    #: N103: 9 (DUNS+4), 92 (buyer's store or location number), UL (GLN), ...
    id_qualifier: str = ""
    id: str = ""
    address1: str = ""
    address2: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    country: str = ""

    def as_address(self) -> dict:
        """The order's ship-to shape (API Address plus the location number)."""
        out = {"name": self.name or None, "address1": self.address1 or None,
               "address2": self.address2 or None, "city": self.city or None,
               "province": self.state or None, "zip": self.zip or None,
               "country_code": self.country[:2] or None if self.country else None,
               "location_qualifier": self.id_qualifier or None, "location_id": self.id or None}
        return {k: v for k, v in out.items() if v}


@dataclass
class Terms:
    """ITD: type, basis date, discount percent and days, net days."""

    type: str = ""
    basis: str = ""
    discount_percent: str = ""
    discount_days: str = ""
    net_days: str = ""
    description: str = ""


@dataclass
class PoLine:
    #: PO101, the buyer's line number (may be empty or alphanumeric: "item-1").
    line_no: str
    #: Position of the PO1 segment in the transaction set (ST = 1).
    position: int
    #: PO102 as a number (None when missing or not a whole number).
    quantity: int | None
    #: PO103
    uom: str
    #: PO104, or CTP03 when PO104 is empty; per ``uom``.
    price: Decimal | None
    #: (qualifier, id) pairs from PO106/PO107 on, as sent.
    ids: list[tuple[str, str]]
    #: PO401: units in one pack of ``uom`` (when given).
    pack: int | None = None
    description: str = ""
    errors: list[e.SegmentError] = field(default_factory=list)
    line: int | None = None
    #: PO102 as sent (the CTT02 hash total adds these).
    quantity_sent: str = ""

    @property
    def units(self) -> int | None:
        """The quantity in eaches: PO102, times the pack when ordered in packs.
        None when that cannot be known from the document alone."""
        if self.quantity is None:
            return None
        if self.uom in EACH_UNITS or not self.uom:
            return self.quantity
        if self.uom == "DZ":
            return self.quantity * 12
        if self.uom in PACK_UNITS and self.pack:
            return self.quantity * self.pack
        return None

    def id_for(self, qualifier: str) -> str | None:
        for q, v in self.ids:
            if q == qualifier and v:
                return v
        return None


@dataclass
class PurchaseOrder:
    control: str
    purpose: str
    type: str
    po_number: str
    date: str
    release: str = ""
    currency: str = ""
    dates: dict[str, str] = field(default_factory=dict)
    parties: dict[str, Party] = field(default_factory=dict)
    terms: Terms | None = None
    references: dict[str, str] = field(default_factory=dict)
    lines: list[PoLine] = field(default_factory=list)
    declared_lines: int | None = None
    declared_hash: Decimal | None = None
    amount: Decimal | None = None
    #: Errors that reject the whole purchase order.
    errors: list[e.SegmentError] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        return bool(self.errors)

    @property
    def ship_to(self) -> Party | None:
        return self.parties.get("ST")

    @property
    def bill_to(self) -> Party | None:
        return self.parties.get("BT")

    def first_date(self, qualifiers: tuple[str, ...]) -> str | None:
        return next((self.dates[q] for q in qualifiers if q in self.dates), None)

    @property
    def ship_date(self) -> str | None:
        return self.first_date(SHIP_DATES)

    @property
    def cancel_date(self) -> str | None:
        return self.first_date(CANCEL_DATES)

    @property
    def delivery_date(self) -> str | None:
        return self.first_date(DELIVERY_DATES)

    @property
    def line_errors(self) -> list[e.SegmentError]:
        return [err for line in self.lines for err in line.errors]

    @property
    def quantity_sum(self) -> int:
        return sum(line.quantity or 0 for line in self.lines)

    @property
    def extended_total(self) -> Decimal:
        """Sum of PO102 x PO104 over the lines (what AMT usually states)."""
        return sum((Decimal(line.quantity or 0) * (line.price or 0) for line in self.lines), Decimal(0))


def _decimal(text: str) -> Decimal | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _date(text: str) -> bool:
    text = text.strip()
    return len(text) == 8 and text.isdigit() and "01" <= text[4:6] <= "12" and "01" <= text[6:8] <= "31"


def parse(ts: TransactionSet) -> PurchaseOrder:
    """The purchase order in an 850 transaction set."""
    body = ts.body
    pos = {id(seg): i + 2 for i, seg in enumerate(body)}  # ST is position 1
    po = PurchaseOrder(control=ts.control, purpose="", type="", po_number="", date="")
    beg = next((s for s in body if s.id == "BEG"), None)
    if beg is None:
        po.errors.append(e.SegmentError("BEG", 2, "the BEG segment is missing",
                                        code=e.MANDATORY_SEGMENT_MISSING))
    else:
        _beg(po, beg, pos[id(beg)])
    party: Party | None = None
    line: PoLine | None = None
    ctt: Segment | None = None
    for seg in body:
        p = pos[id(seg)]
        sid = seg.id
        if sid == "CUR":
            po.currency = seg.get(2)
        elif sid == "REF" and line is None:
            po.references.setdefault(seg.get(1), seg.get(2) or seg.get(3))
        elif sid == "DTM" and line is None:
            if _date(seg[2]):
                po.dates.setdefault(seg.get(1), seg.get(2))
        elif sid == "ITD" and po.terms is None:
            po.terms = Terms(type=seg.get(1), basis=seg.get(2), discount_percent=seg.get(3),
                             discount_days=seg.get(5), net_days=seg.get(7), description=seg.get(12))
        elif sid == "N1":
            party = Party(role=seg.get(1), name=seg.get(2), id_qualifier=seg.get(3), id=seg.get(4))
            if line is None:
                po.parties.setdefault(party.role, party)
        elif sid == "N3" and party is not None:
            party.address1, party.address2 = seg.get(1), seg.get(2)
        elif sid == "N4" and party is not None:
            party.city, party.state, party.zip, party.country = seg.get(1), seg.get(2), seg.get(3), seg.get(4)
        elif sid == "PO1":
            line = _po1(seg, p)
            party = None
            po.lines.append(line)
        elif sid == "CTP" and line is not None and line.price is None:
            line.price = _decimal(seg[3])
        elif sid == "PID" and line is not None and not line.description:
            line.description = seg.get(5)
        elif sid == "PO4" and line is not None:
            pack = seg.get(1)
            if pack:
                if pack.isdigit() and int(pack) > 0:
                    line.pack = int(pack)
                else:
                    line.errors.append(e.SegmentError(
                        "PO4", p, f"line {line.line_no or line.position}: pack {pack!r} is not a whole number",
                        loop="PO1", line=seg.line,
                        elements=[e.ElementError(1, "356", e.INVALID_CHARACTER, pack)]))
        elif sid == "CTT":
            ctt = seg
            line = None
        elif sid == "AMT" and seg.get(1) in ("TT", "1", "GV"):
            po.amount = _decimal(seg[2])
    if ctt is not None:
        _ctt(po, ctt, pos[id(ctt)])
    return po


def _beg(po: PurchaseOrder, beg: Segment, p: int) -> None:
    po.purpose, po.type, po.po_number = beg.get(1), beg.get(2), beg.get(3)
    po.release, po.date = beg.get(4), beg.get(5)
    bad = []
    if not po.purpose:
        bad.append(e.ElementError(1, "353", e.MANDATORY_ELEMENT_MISSING))
    if not po.po_number:
        bad.append(e.ElementError(3, "324", e.MANDATORY_ELEMENT_MISSING))
    if not po.date:
        bad.append(e.ElementError(5, "373", e.MANDATORY_ELEMENT_MISSING))
    elif not _date(po.date):
        bad.append(e.ElementError(5, "373", e.INVALID_DATE, po.date))
    if bad:
        what = ", ".join(f"BEG{x.position:02d}" for x in bad)
        po.errors.append(e.SegmentError("BEG", p, f"BEG is missing or has a bad {what}", elements=bad,
                                        line=beg.line))


def _po1(seg: Segment, p: int) -> PoLine:
    ids = []
    for i in range(6, len(seg.elements), 2):
        q, v = seg.get(i), seg.get(i + 1)
        if q or v:
            ids.append((q, v))
    qty_text = seg.get(2)
    qty = _decimal(qty_text)
    price = _decimal(seg[4])
    line = PoLine(line_no=seg.get(1), position=p, quantity=None, uom=seg.get(3), price=price, ids=ids,
                  line=seg.line, quantity_sent=qty_text)
    label = f"line {line.line_no or p}"
    bad: list[e.ElementError] = []
    if not qty_text:
        bad.append(e.ElementError(2, "330", e.MANDATORY_ELEMENT_MISSING))
    elif qty is None or qty != qty.to_integral_value() or qty <= 0 or qty > 10**9:
        bad.append(e.ElementError(2, "330", e.INVALID_CHARACTER, qty_text))
    else:
        line.quantity = int(qty)
    if seg.get(4) and price is None:
        bad.append(e.ElementError(4, "212", e.INVALID_CHARACTER, seg.get(4)))
    if not ids or not any(v for _, v in ids):
        bad.append(e.ElementError(7, "234", e.MANDATORY_ELEMENT_MISSING))
    if bad:
        what = {"330": "quantity", "212": "price", "234": "product id"}
        text = ", ".join(f"{what[x.reference]} {'missing' if x.code == e.MANDATORY_ELEMENT_MISSING else repr(x.value)}"
                         for x in bad)
        line.errors.append(e.SegmentError("PO1", p, f"{label}: {text}", loop="PO1", elements=bad,
                                          line=seg.line))
    return line


def _ctt(po: PurchaseOrder, ctt: Segment, p: int) -> None:
    po.declared_lines = int(ctt.get(1)) if ctt.get(1).isdigit() else None
    po.declared_hash = _decimal(ctt[2])
    bad = []
    if po.declared_lines != len(po.lines):
        bad.append(e.ElementError(1, "354", e.INVALID_CODE_VALUE, ctt.get(1)))
    # the hash total is the sum of PO102 as sent (a bad quantity counts as 0)
    if po.declared_hash is not None:
        sent = sum((_decimal(line.quantity_sent) or Decimal(0) for line in po.lines), Decimal(0))
        if sent != po.declared_hash:
            bad.append(e.ElementError(2, "347", e.INVALID_CODE_VALUE, ctt.get(2)))
    if bad:
        parts = []
        if any(x.position == 1 for x in bad):
            parts.append(f"CTT01 says {ctt.get(1)!r} lines, the order has {len(po.lines)}")
        if any(x.position == 2 for x in bad):
            parts.append(f"CTT02 hash total {ctt.get(2)!r} is not the sum of the quantities")
        po.errors.append(e.SegmentError("CTT", p, "; ".join(parts), loop="CTT", elements=bad, line=ctt.line))

