"""The X12 reader and writers against the real fixtures and against an
independent structural parser (ansi-x12), with SSCCs checked by biip."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from biip.sscc import Sscc
from x12 import inspect_x12_interchange, parse_x12_interchange, tokenize_x12

from documents import sscc
from documents.x12 import ack855, ack997, asn856, invoice810, po850
from documents.x12.reader import X12Error, read
from documents.x12.writer import Envelope, GroupOut, TransactionSetOut, X12WriteError, interchange, set_control

FIXTURES = Path(__file__).parent.parent / "fixtures" / "edi"
SHA256 = {
    "01_850_4010VICS_node-x12.edi": "71034c6e7543e4897afa4e9fe22bd2eb62a49ceb582b4bec99cda966bbe93117",
    "06_850_5010_stedi_dropship.edi": "ff67af1bc756cee86675f7ae9f7035490776c2f0e3496dbb8a6c3541549d2786",
    "07_856_4010VICS_SOPI_SSCC.edi": "ecac2d2418932467c61b90274b88763b5328dadd7ce935ed47d0abcc9185d9b7",
    "08_810_4010_walmart.edi": "a7c1cb292fbddd21a82744c1cae5a5a0725616da647dca25d101ed6594289358",
}
AT = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def only_set(data: bytes):
    (ic,) = read(data)
    (group,) = ic.groups
    (ts,) = group.sets
    return ic, group, ts


@pytest.mark.parametrize("name", sorted(SHA256))
def test_fixtures_are_byte_for_byte_the_shared_ones(name):
    assert hashlib.sha256(fixture(name)).hexdigest() == SHA256[name]


def test_850_4010vics_facts():
    ic, group, ts = only_set(fixture("01_850_4010VICS_node-x12.edi"))
    assert (ic.delimiters.element, ic.delimiters.component, ic.delimiters.segment) == ("*", ">", "~")
    assert ic.version == "00400" and group.version == "004010VICS" and group.functional_id == "PO"
    assert ts.errors == [] and group.errors == []
    po = po850.parse(ts)
    assert (po.po_number, po.date, po.type, po.purpose) == ("08292233294", "20101127", "SA", "00")
    assert po.ship_to.name == "XYZ RETAIL" and (po.ship_to.id_qualifier, po.ship_to.id) == ("9", "0003947268292")
    assert po.delivery_date == "20101214"
    assert len(po.lines) == 6 and po.quantity_sum == 1310
    assert po.extended_total == Decimal("13045.94") == po.amount
    assert [q for q, _ in po.lines[0].ids] == ["CB", "PR", "VN"]
    assert [line.pack for line in po.lines] == [4, 2, 6, 4, 4, 6]
    assert po.terms.type == "14" and po.terms.discount_percent == "2" and po.terms.net_days == "46"
    assert not po.errors and not po.line_errors


def test_850_5010_dropship_facts():
    ic, group, ts = only_set(fixture("06_850_5010_stedi_dropship.edi"))
    assert ic.version == "00501" and ic.delimiters.repetition is None  # ISA11 is U, not a separator
    assert group.functional_id == "OW" and group.version == "005010"
    po = po850.parse(ts)
    assert (po.po_number, po.type) == ("365465413", "DS")
    assert [line.line_no for line in po.lines] == ["item-1", "item-2"]
    assert [line.quantity for line in po.lines] == [8, 4]  # PO102 "0008"
    assert [q for q, _ in po.lines[0].ids] == ["VC", "SK"] and po.lines[0].id_for("SK") == "ACM/8900-400"
    assert po.amount == Decimal("3700") == po.extended_total
    assert po.ship_to.id == "123" and po.ship_to.id_qualifier == "92"


def test_856_sopi_facts_and_sscc():
    ic, group, ts = only_set(fixture("07_856_4010VICS_SOPI_SSCC.edi"))  # BOM, CRLF, indentation
    assert ic.delimiters.segment == "~"
    asn = asn856.parse(ts)
    assert asn.structure == "0001"
    assert [(lv.id, lv.parent, lv.code) for lv in asn.levels] == [
        ("1", "", "S"), ("2", "1", "O"), ("3", "2", "P"), ("4", "3", "I")]
    assert asn.ssccs == ["007121610006156802"] and sscc.check_digit("00712161000615680") == "2"
    assert Sscc.parse(asn.ssccs[0]).check_digit == 2
    assert asn.declared_hl == len(asn.levels) == 4
    assert asn.bill_of_lading == "521649209219" and asn.po_numbers == ["SO/VINCE1"]
    assert asn.carrier == "FED2" and asn.carton_count == 1
    (item,) = asn.levels[3].items
    assert [q for q, _ in item.ids] == ["UP", "PR", "EN"] and item.units == 1


def test_810_walmart_facts():
    ic, group, ts = only_set(fixture("08_810_4010_walmart.edi"))  # CR terminator, BOM
    assert ic.delimiters.segment == "\r" and ic.version == "00040"
    inv = invoice810.parse(ts)
    assert inv.po_number == "3376103367" and inv.number == "6463367"
    assert inv.total == Decimal("3875.30") == inv.computed_total
    assert inv.total == Decimal(1080) * Decimal("3.61") - Decimal("23.50")
    (line,) = inv.lines
    assert line.line_no == "" and [q for q, _ in line.ids] == ["IN", "UP", "UK"]
    n4 = next(seg for seg in ts.segments if seg.id == "N4")
    assert n4[3] == "72712 "  # trailing spaces inside elements are kept as sent
    uk = next(seg for seg in ts.segments if seg.id == "IT1")
    assert uk[11] == "00221089552284 "


def _broken(name: str, old: bytes, new: bytes) -> bytes:
    data = fixture(name)
    assert old in data
    return data.replace(old, new, 1)


def test_truncated_file_is_refused():
    data = fixture("01_850_4010VICS_node-x12.edi")
    with pytest.raises(X12Error, match="truncated"):
        read(data[: data.index(b"GE*")])
    with pytest.raises(X12Error, match="complete ISA"):
        read(data[:50])


def test_wrong_counts_reject_the_set_or_the_group():
    _, _, ts = only_set(_broken("01_850_4010VICS_node-x12.edi", b"SE*33*", b"SE*32*"))
    assert ts.errors == ["4"]
    (ic,) = read(_broken("01_850_4010VICS_node-x12.edi", b"GE*1*1421", b"GE*2*1421"))
    assert ic.groups[0].errors == ["5"]
    with pytest.raises(X12Error, match="IEA01"):
        read(_broken("01_850_4010VICS_node-x12.edi", b"IEA*1*", b"IEA*2*"))


def test_wrong_line_count_and_hash_total_reject_the_po():
    _, _, ts = only_set(_broken("01_850_4010VICS_node-x12.edi", b"CTT*6~", b"CTT*6*1311~"))
    po = po850.parse(ts)
    assert po.rejected and po.errors[0].segment_id == "CTT"
    assert [e.reference for e in po.errors[0].elements] == ["347"]
    _, _, ts = only_set(_broken("01_850_4010VICS_node-x12.edi", b"CTT*6~", b"CTT*6*1310~"))
    assert not po850.parse(ts).rejected
    _, _, ts = only_set(_broken("01_850_4010VICS_node-x12.edi", b"CTT*6~", b"CTT*5~"))
    assert po850.parse(ts).rejected


def test_a_bad_po1_is_a_line_error_not_a_rejection():
    _, _, ts = only_set(_broken("01_850_4010VICS_node-x12.edi", b"PO1*2*220*", b"PO1*2*22O*"))
    po = po850.parse(ts)
    assert not po.rejected
    (err,) = po.line_errors
    assert err.segment_id == "PO1" and err.elements[0].reference == "330"
    ack = ack997.acknowledge_set(ts, po.errors, po.line_errors)
    assert ack.status == "E"


ENV = Envelope(sender_qualifier="ZZ", sender_id="ONHANDTEST", receiver_qualifier="12",
               receiver_id="4405197800", gs_sender="ONHANDTEST", gs_receiver="4405197800",
               version="004010VICS", usage="T")


def _independent(data: bytes):
    """ansi-x12's structural parse: envelopes, control numbers, counts."""
    parsed = parse_x12_interchange(tokenize_x12(data))
    return parsed, inspect_x12_interchange(parsed)


def test_our_997_parses_back_with_both_readers():
    (ic,) = read(_broken("01_850_4010VICS_node-x12.edi", b"PO1*2*220*", b"PO1*2*22O*"))
    group = ic.groups[0]
    ts = group.sets[0]
    po = po850.parse(ts)
    ack = ack997.acknowledge_group(group, [ack997.acknowledge_set(ts, po.errors, po.line_errors)])
    data = interchange(ENV, 41, [GroupOut("FA", 17, [TransactionSetOut("997", set_control(5),
                                                                       ack997.segments(ack))])], AT)
    parsed, inspection = _independent(data)
    assert parsed.control_number == b"000000041" and inspection.transaction_set_codes == (b"997",)
    (back,) = read(data)
    assert back.control == "000000041" and back.groups[0].control == "17"
    (read_ack,) = ack997.parse(back.groups[0].sets[0])
    assert (read_ack.control, read_ack.status, read_ack.received, read_ack.accepted) == ("1421", "E", 1, 1)
    assert read_ack.sets[0].status == "E" and read_ack.sets[0].errors[0].segment_id == "PO1"
    assert read_ack.sets[0].errors[0].elements[0].reference == "330"


def test_our_855_856_810_parse_back_with_every_count_right():
    ack = ack855.PoAck("PO-1", "20260301", "20260302", [
        ack855.AckLine("1", 10, "CA", Decimal("24"), [("VN", "A")], units=120, reserved=120),
        ack855.AckLine("2", 5, "EA", Decimal("3.5"), [("UP", "012345678905")], units=5, reserved=2, backordered=3),
        ack855.AckLine("3", 4, "EA", None, [("BP", "X-9")], units=4, rejected="unknown part"),
    ])
    asn = asn856.ShipNotice(
        shipment_id="shp_1", date="20260302", time="1405", ship_date="20260302", po_number="PO-1",
        carrier="ROADWAY", bill_of_lading="BOL-7", weight_lb="12.5",
        cartons=[asn856.AsnCarton(sscc.build(0, "0712161", 10), [asn856.AsnItem("1", [("VN", "A")], 12)], 1),
                 asn856.AsnCarton(sscc.build(0, "0712161", 11), [asn856.AsnItem("1", [("VN", "A")], 12),
                                                                   asn856.AsnItem("2", [("UP", "1")], 2)], 1)],
        pallets=[asn856.AsnPallet(1, sscc.build(0, "0712161", 12))])
    inv = invoice810.InvoiceDoc(number="1001", date="20260302", po_number="PO-1", net_days=30,
                                due_date="20260401", lines=[invoice810.InvoiceLine("1", 2, "CA", Decimal("24")),
                                                            invoice810.InvoiceLine("2", 2, "EA", Decimal("3.5"))])
    bodies = {"855": ack855.segments(ack), "856": asn856.segments(asn), "810": invoice810.segments(inv)}
    data = interchange(ENV, 7, [GroupOut(fid, 100 + i, [TransactionSetOut(kind, set_control(200 + i), body)])
                                for i, (fid, (kind, body)) in enumerate(zip(("PR", "SH", "IN"), bodies.items()))],
                       AT)
    parsed, inspection = _independent(data)
    assert inspection.transaction_set_codes == (b"855", b"856", b"810")
    assert [g.control_number for g in parsed.groups] == [b"100", b"101", b"102"]
    (back,) = read(data)
    assert all(not g.errors and not g.sets[0].errors for g in back.groups)
    read_ack = ack855.parse(back.groups[0].sets[0])
    assert read_ack.type == "AC" and read_ack.declared_lines == 3
    assert [line.acks for line in read_ack.lines] == [[("IA", 10, "CA")], [("IA", 2, "EA"), ("IB", 3, "EA")],
                                                      [("IR", 4, "EA")]]
    read_asn = asn856.parse(back.groups[1].sets[0])
    assert read_asn.structure == "0001" and read_asn.declared_hl == len(read_asn.levels) == 8
    assert [lv.code for lv in read_asn.levels] == ["S", "O", "T", "P", "I", "P", "I", "I"]
    assert len(read_asn.ssccs) == 3 and all(Sscc.parse(c) for c in read_asn.ssccs)
    assert read_asn.units == 26 and read_asn.bill_of_lading == "BOL-7"
    read_inv = invoice810.parse(back.groups[2].sets[0])
    assert read_inv.total == Decimal("55.00") == read_inv.computed_total and read_inv.po_number == "PO-1"
    assert read_inv.terms[5:7] == ["20260401", "30"] and read_inv.declared_lines == 2


def test_the_writer_refuses_delimiters_and_numbers_that_do_not_fit():
    with pytest.raises(X12WriteError):
        interchange(ENV, 1, [GroupOut("PR", 1, [TransactionSetOut("855", "0001", [["BAK", "00", "A*B"]])])], AT)
    with pytest.raises(X12WriteError):
        interchange(ENV, 10**9, [], AT)


@pytest.mark.parametrize("serial", [0, 1, 999_999_999 // 100, 123_456])
def test_sscc_check_digits_agree_with_biip(serial):
    code = sscc.build(3, "0712161", serial)
    assert len(code) == 18 and sscc.is_valid(code)
    parsed = Sscc.parse(code)
    assert parsed.extension_digit == 3 and str(parsed.check_digit) == code[-1]
    assert not sscc.is_valid(code[:17] + str((int(code[17]) + 1) % 10))
