"""856 advance ship notices, Shipment/Order/Pack/Item (BSN05 ``0001``).

One 856 per shipment: the shipment level (TD1 cartons and weight, TD5
carrier, REF*BM bill of lading, REF*CN tracking, DTM*011 ship date, N1
ship-to and ship-from), the order level (PRF with the PO number), then per
pallet (tare, HL ... T) and per carton (pack, HL ... P) its SSCC-18 in
MAN*GM (AI 00 in front, as VICS files send it), and per item in the carton
LIN (the buyer's id pairs from the PO line) and SN1 (units shipped).
CTT01 counts the HL segments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from documents import sscc as sscc_codes
from documents.x12.reader import TransactionSet
from documents.x12.writer import Seg, text


@dataclass
class AsnItem:
    line_no: str
    ids: list[tuple[str, str]]
    units: int
    uom: str = "EA"


@dataclass
class AsnCarton:
    sscc: str | None
    items: list[AsnItem]
    #: 1-based pallet number the carton is on, or None.
    pallet: int | None = None


@dataclass
class AsnPallet:
    number: int
    sscc: str | None


@dataclass
class ShipNotice:
    shipment_id: str
    date: str
    time: str
    ship_date: str
    po_number: str
    po_date: str = ""
    carrier: str = ""
    service: str = ""
    #: TD504: M motor (freight), U private parcel service
    transport: str = "M"
    bill_of_lading: str = ""
    tracking_number: str = ""
    weight_lb: str = ""
    ship_to: dict = field(default_factory=dict)
    ship_from_name: str = ""
    cartons: list[AsnCarton] = field(default_factory=list)
    pallets: list[AsnPallet] = field(default_factory=list)


def _party(role: str, party: dict) -> list[Seg]:
    n1 = ["N1", role, text(party.get("name"), 60)]
    if party.get("location_id"):
        n1 += [party.get("location_qualifier") or "92", text(party["location_id"], 80)]
    out: list[Seg] = [n1]
    if party.get("address1"):
        out.append(["N3", text(party["address1"], 55), text(party.get("address2"), 55)])
    if party.get("city"):
        out.append(["N4", text(party["city"], 30), text(party.get("province"), 2),
                    text(party.get("zip"), 15), text(party.get("country_code"), 3)])
    return out


def segments(asn: ShipNotice) -> list[Seg]:
    out: list[Seg] = [["BSN", "00", text(asn.shipment_id, 30), asn.date, asn.time, "0001"]]
    hl = 0

    def open_hl(parent: int | None, code: str) -> int:
        nonlocal hl
        hl += 1
        out.append(["HL", str(hl), "" if parent is None else str(parent), code])
        return hl

    shipment = open_hl(None, "S")
    out.append(["TD1", "CTN25", str(len(asn.cartons)), "", "", "", "G" if asn.weight_lb else "",
                asn.weight_lb, "LB" if asn.weight_lb else ""])
    out.append(["TD5", "B", "2", text(asn.carrier, 80), asn.transport, text(asn.service or asn.carrier, 35)])
    if asn.bill_of_lading:
        out.append(["REF", "BM", text(asn.bill_of_lading, 30)])
    if asn.tracking_number:
        out.append(["REF", "CN", text(asn.tracking_number, 30)])
    out.append(["DTM", "011", asn.ship_date])
    if asn.ship_to:
        out.extend(_party("ST", asn.ship_to))
    out.append(["N1", "SF", text(asn.ship_from_name, 60)])
    order = open_hl(shipment, "O")
    out.append(["PRF", text(asn.po_number, 22), "", "", asn.po_date])
    tares: dict[int, int] = {}
    for pallet in asn.pallets:
        tares[pallet.number] = open_hl(order, "T")
        if pallet.sscc:
            out.append(["MAN", "GM", sscc_codes.AI + pallet.sscc])
    for carton in asn.cartons:
        parent = tares.get(carton.pallet, order) if carton.pallet else order
        pack = open_hl(parent, "P")
        if carton.sscc:
            out.append(["MAN", "GM", sscc_codes.AI + carton.sscc])
        for item in carton.items:
            open_hl(pack, "I")
            lin = ["LIN", text(item.line_no, 20)]
            for q, v in item.ids:
                lin += [q, text(v, 48)]
            out.append(lin)
            out.append(["SN1", text(item.line_no, 20), str(item.units), item.uom])
    out.append(["CTT", str(hl)])
    return out


@dataclass
class ReadLevel:
    id: str
    parent: str
    code: str
    sscc: str | None = None
    items: list[AsnItem] = field(default_factory=list)


@dataclass
class ReadShipNotice:
    purpose: str = ""
    shipment_id: str = ""
    structure: str = ""
    levels: list[ReadLevel] = field(default_factory=list)
    po_numbers: list[str] = field(default_factory=list)
    bill_of_lading: str = ""
    carton_count: int | None = None
    weight: str = ""
    carrier: str = ""
    ship_date: str = ""
    declared_hl: int | None = None

    @property
    def ssccs(self) -> list[str]:
        return [lv.sscc for lv in self.levels if lv.sscc]

    @property
    def units(self) -> int:
        return sum(i.units for lv in self.levels for i in lv.items)


def parse(ts: TransactionSet) -> ReadShipNotice:
    """Reads an 856 (a partner's, or ours for round trips). SSCCs are checked."""
    asn = ReadShipNotice()
    level: ReadLevel | None = None
    pending: AsnItem | None = None
    for seg in ts.body:
        sid = seg.id
        if sid == "BSN":
            asn.purpose, asn.shipment_id, asn.structure = seg.get(1), seg.get(2), seg.get(5)
        elif sid == "HL":
            level = ReadLevel(seg.get(1), seg.get(2), seg.get(3))
            asn.levels.append(level)
            pending = None
        elif sid == "TD1" and asn.carton_count is None:
            asn.carton_count = int(seg.get(2)) if seg.get(2).isdigit() else None
            asn.weight = seg.get(7)
        elif sid == "TD5" and not asn.carrier:
            asn.carrier = seg.get(3)
        elif sid == "REF" and seg.get(1) == "BM" and not asn.bill_of_lading:
            asn.bill_of_lading = seg.get(2)
        elif sid == "DTM" and seg.get(1) == "011":
            asn.ship_date = seg.get(2)
        elif sid == "PRF":
            asn.po_numbers.append(seg.get(1))
        elif sid == "MAN" and seg.get(1) == "GM" and level is not None:
            level.sscc = sscc_codes.from_man(seg.get(2))
        elif sid == "LIN" and level is not None:
            ids = [(seg.get(i), seg.get(i + 1)) for i in range(2, len(seg.elements), 2) if seg.get(i)]
            pending = AsnItem(seg.get(1), ids, 0)
            level.items.append(pending)
        elif sid == "SN1" and pending is not None:
            qty = seg.get(2)
            pending.units = int(float(qty)) if qty else 0
            pending.uom = seg.get(3)
        elif sid == "CTT":
            asn.declared_hl = int(seg.get(1)) if seg.get(1).isdigit() else None
    return asn
