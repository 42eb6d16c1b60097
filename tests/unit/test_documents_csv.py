"""CSV orders and customers: header aliases, every bad row with its line and
column, files that cannot be read; the ASN readiness check; carton labels."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from documents import asn_check, csv_customers, csv_orders, labels, sscc


def test_aliases_from_common_exports_and_orders_grouped_by_po():
    data = ("Customer,Customer PO Number,Item #,Qty,Unit Price,Ship To Name,Ship Date\n"
            "Acme,PO-1,A,5,$1.50,Store 4,2026-03-01\n"
            "Acme,PO-2,B,1,,Store 9,\n"
            "Acme,PO-1,B,\"1,200\",2.00,Store 4,03/01/2026\n").encode()
    parsed = csv_orders.parse(data)
    assert parsed.errors == [] and parsed.row_errors == []
    assert parsed.columns["po_number"] == "Customer PO Number" and parsed.columns["sku"] == "Item #"
    first, second = parsed.orders
    assert (first.po_number, [(l.sku, l.quantity, l.unit_price) for l in first.lines]) == (
        "PO-1", [("A", 5, "1.50"), ("B", 1200, "2.00")])
    assert first.fields["ship_date"] == "2026-03-01" and first.ship_to == {"name": "Store 4"}
    assert second.po_number == "PO-2" and second.rows == [3]


def test_every_bad_row_is_reported_with_line_and_column():
    data = ("PO,SKU,Quantity,Price,Ship To\n"
            "P1,A,0,1,X\n"          # line 2: quantity 0
            "P1,A,2,abc,X\n"        # line 3: price
            "P2,,2,1,X\n"           # line 4: no item
            ",A,1,1,X\n"            # line 5: no PO
            "P3,A,1.5,1,X\n"        # line 6: fractional
            "P3,B,1,1,Y\n"          # line 7: ship-to differs from line 6
            "P4,C,3,1,Z\n").encode()  # good
    parsed = csv_orders.parse(data)
    got = {(e.line, e.column) for e in parsed.row_errors}
    assert got == {(2, "Quantity"), (3, "Price"), (4, "SKU"), (5, "PO"), (6, "Quantity"), (7, "Ship To")}
    good = [o for o in parsed.orders if not o.errors]
    assert [o.po_number for o in good] == ["P4"]


def test_missing_column_and_non_utf8_files_are_refused_whole():
    parsed = csv_orders.parse(b"PO,SKU\nP1,A\n")
    (err,) = parsed.errors
    assert err.line == 1 and err.column == "quantity" and "missing column" in err.message and not parsed.orders
    parsed = csv_orders.parse("PO,SKU,Qty\nP1,A,1\nP2,Caf\u00e9,1\n".encode("latin-1"))
    (err,) = parsed.errors
    assert err.line == 3 and "not utf-8" in err.message.lower() and "0xE9" in err.message
    parsed = csv_orders.parse("PO,SKU,Qty\nP1,Caf\u00e9,1\n".encode("latin-1"), encoding="latin-1")
    assert parsed.errors == [] and parsed.orders[0].lines[0].sku == "Caf\u00e9"


def test_semicolons_and_a_byte_order_mark():
    parsed = csv_orders.parse("\ufeffPO;SKU;Qty\nP1;A;2\n".encode())
    assert parsed.errors == [] and parsed.orders[0].lines[0].quantity == 2


def test_customers_with_partner_options():
    data = ("Name,Account Number,Terms,Backorder Policy,ISA Qualifier,ISA ID,Item Qualifiers,Send 855\n"
            "XYZ Retail,A-1,Net 30,backorder,12,4405197800,VN;UP,yes\n"
            "Bad Terms,A-2,net 45,,,,,\n"
            "Half EDI,A-3,,,ZZ,,,\n").encode()
    parsed = csv_customers.parse(data)
    (good,) = parsed.customers
    assert good.profile == {"channel": "wholesale", "payment_terms": "net_30", "backorder_policy": "backorder",
                            "edi": {"isa_qualifier": "12", "isa_id": "4405197800", "item_qualifiers": ["VN", "UP"],
                                    "send_855": True}}
    assert {(e.line, e.column) for e in parsed.errors} == {(3, "Terms"), (4, "ISA ID")}


SHIPMENT = {"id": "shp_1", "method": "freight", "lines": [{"sku": "A", "quantity": 24, "line": 0},
                                                        {"sku": "B", "quantity": 5, "line": 1}]}


def test_asn_readiness_names_each_problem():
    assert asn_check.problems(SHIPMENT, {}) == [
        "the shipment has no cartons (give them with the shipment: cartons)",
        "a freight shipment needs a bill of lading (bill_of_lading)"]
    good = {**SHIPMENT, "bill_of_lading": "BOL1", "cartons": [
        {"number": 1, "sscc": sscc.build(0, "0712161", 1), "lines": [{"sku": "A", "quantity": 12}]},
        {"number": 2, "sscc": sscc.build(0, "0712161", 2), "lines": [{"sku": "A", "quantity": 12},
                                                                   {"sku": "B", "quantity": 5}]}]}
    assert asn_check.problems(good, {"A": 12, "B": None}) == []
    bad = {**good, "cartons": [{**good["cartons"][0], "sscc": None, "lines": [{"sku": "A", "quantity": 10}]},
                               {**good["cartons"][1], "pallet": 1}]}
    assert asn_check.problems(bad, {"A": 12}) == [
        "carton 1 has no SSCC (ONHAND_GS1_COMPANY_PREFIX was not set when it shipped)",
        "carton 1: 10 of A is not a multiple of its case pack of 12",
        "A: 24 units shipped, 22 in cartons",
        "pallet 1 has no SSCC"]


def test_carton_labels_carry_the_sscc_po_and_carton_count():
    code = sscc.build(0, "0712161", 615680)
    pdf = labels.carton_labels([
        labels.CartonLabel(sscc=code, number=n, of=2, po_number="PO-77", carrier="ROADWAY", reference="BOL 9",
                           ship_from=["Acme Widgets"], ship_to=["XYZ RETAIL", "SOLON OH"]) for n in (1, 2)])
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 2
    text = reader.pages[1].extract_text()
    for expected in ("PO-77", "CARTON 2 OF 2", "ROADWAY", "XYZ RETAIL", labels.spaced(code)):
        assert expected in text
    with pytest.raises(sscc.SsccError):
        labels.barcode_svg("007121610006156803")
