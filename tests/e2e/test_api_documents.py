"""Wholesale documents over HTTP with real workers: the two 850 fixtures
become orders whose reservation, 997 and 855 agree line by line; a shipment
in cartons gets SSCCs, labels, an 856 and an 810 (read back by our reader
and by ansi-x12, SSCCs checked by biip) and an open invoice; uploads are
size-limited before they are read."""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from biip.sscc import Sscc
from pypdf import PdfReader
from x12 import inspect_x12_interchange, parse_x12_interchange, tokenize_x12

from documents.x12 import ack855, ack997, asn856, invoice810
from documents.x12.reader import read
from tests.documents_support import fixture
from tests.harness import ADMIN, running_stack

pytestmark = pytest.mark.anyio

FIXTURE_1 = "01_850_4010VICS_node-x12.edi"
FIXTURE_6 = "06_850_5010_stedi_dropship.edi"


async def _sku(stack, sku, on_hand, **body):
    assert (await stack.put(f"/v1/skus/{sku}", {"name": sku, **body})).status_code == 200
    if on_hand:
        r = await stack.post("/v1/inventory/receipts", {"reference": f"init-{sku}",
                                                         "lines": [{"sku": sku, "quantity": on_hand}]})
        assert r.status_code == 201, r.text


async def _upload(stack, path, name, data, **params):
    return await stack.client.post(path, params=params, headers=ADMIN, files={"file": (name, data)})


async def _document(stack, doc_id):
    r = await stack.get(f"/v1/edi/documents/{doc_id}/content")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/edi-x12")
    inspect_x12_interchange(parse_x12_interchange(tokenize_x12(r.content)))  # independent structural check
    (ic,) = read(r.content)
    return ic


async def _wait_for(stack, path, predicate, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        body = (await stack.get(path)).json()
        if predicate(body):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


async def _world(stack):
    # fixture 1: VN part numbers are our SKUs; RD5322 short, XY5266 out, VX2332 unknown
    for sku, on_hand, pack in (("AB3542", 500, 4), ("RD5322", 100, 2), ("XY5266", 0, 6),
                               ("RV0524", 72, 4), ("DX1875", 700, 6)):
        await _sku(stack, sku, on_hand, case_pack=pack)
    # fixture 6: the retailer's SK numbers go through the cross-reference
    await _sku(stack, "ANVIL-400", 5)
    await _sku(stack, "DET-001", 10)
    r = await stack.post("/v1/customers", {"name": "XYZ Retail", "profiles": [{
        "channel": "wholesale", "payment_terms": "net_30", "backorder_policy": "backorder",
        "edi": {"isa_qualifier": "12", "isa_id": "4405197800", "item_qualifiers": ["VN"]}}]})
    assert r.status_code == 201, r.text
    xyz = r.json()
    r = await stack.post("/v1/customers", {"name": "ACME", "profiles": [{
        "channel": "wholesale", "payment_terms": "net_15", "backorder_policy": "cancel_remainder",
        "edi": {"isa_qualifier": "ZZ", "isa_id": "ANOTHERMERCH", "item_qualifiers": ["SK"]}}]})
    acme = r.json()
    r = await stack.put(f"/v1/customers/{acme['id']}/item-references", {"items": [
        {"buyer_item": "ACM/8900-400", "sku": "ANVIL-400"}, {"buyer_item": "ACM/1100-001", "sku": "DET-001"}]})
    assert r.status_code == 200 and len(r.json()["items"]) == 2
    await stack.drained()
    return xyz, acme


def _expected_acks(line):
    units, res, bo, canc = line["quantity"], line["reserved"], line["backordered"], line["cancelled"]
    if res == units:
        return [("IA", units)]
    if bo:
        return ([("IA", res)] if res else []) + [("IB", bo)]
    return [("IQ", res)] if res else [("IR", canc)]


async def test_both_850s_become_orders_and_reservation_997_and_855_agree(redis_url, database_url, tmp_path):
    async with running_stack(redis_url, database_url, edi_outbox=tmp_path / "out",
                             gs1_company_prefix="0712161") as stack:
        xyz, acme = await _world(stack)
        for name, customer in ((FIXTURE_1, xyz), (FIXTURE_6, acme)):
            r = await _upload(stack, "/v1/edi/imports", name, fixture(name))
            assert r.status_code == 200, r.text
            report = r.json()
            (outcome,) = report["orders"]
            assert outcome["status"] == "created" and outcome["customer_id"] == customer["id"]
            order = (await stack.get(f"/v1/orders/{outcome['order_id']}")).json()
            assert order["channel"] == "wholesale" and order["source"] == "edi"
            docs = (await stack.get(f"/v1/orders/{order['id']}/edi-documents")).json()["items"]
            assert [d["kind"] for d in docs] == ["855"] and docs[0]["status"] == "sent"
            (g997,) = [d for d in report["documents"] if d["kind"] == "997"]
            (ack,) = ack997.parse((await _document(stack, g997["id"])).groups[0].sets[0])
            assert (ack.status, ack.accepted) == ("A", 1)
            po_ack = ack855.parse((await _document(stack, docs[0]["id"])).groups[0].sets[0])
            assert po_ack.po_number == order["po_number"]
            # line by line: the 855 says what the reservation did (rejected lines are IR)
            by_line = iter(order["lines"])
            for read_line, reported in zip(po_ack.lines, sorted(outcome["lines"], key=lambda l: l["line"]),
                                           strict=True):
                if reported.get("error"):
                    assert [c for c, _, _ in read_line.acks] == ["IR"]
                    continue
                line = next(by_line)
                assert line["sku"] == reported["sku"]
                assert [(c, q) for c, q, _ in read_line.acks] == _expected_acks(line)
            if name == FIXTURE_1:
                assert [(l["sku"], l["reserved"], l["backordered"]) for l in order["lines"]] == [
                    ("AB3542", 120, 0), ("RD5322", 100, 120), ("XY5266", 0, 126), ("RV0524", 72, 0),
                    ("DX1875", 696, 0)]
                assert [l.acks[0][0] for l in po_ack.lines] == ["IA", "IA", "IB", "IR", "IA", "IA"]
            else:
                # cancel_remainder: 5 of 8 anvils reserved (IQ), the detonators in full
                assert [(l["sku"], l["reserved"], l["cancelled"]) for l in order["lines"]] == [
                    ("ANVIL-400", 5, 3), ("DET-001", 4, 0)]
                assert [l.acks for l in po_ack.lines] == [[("IQ", 5, "EA")], [("IA", 4, "EA")]]
        # a re-sent 850 changes nothing
        r = await _upload(stack, "/v1/edi/imports", FIXTURE_1, fixture(FIXTURE_1))
        assert r.json()["orders"][0]["status"] == "exists"
        assert (await stack.get("/v1/orders", params={"channel": "wholesale"})).json()["total"] == 2


async def test_a_shipment_in_cartons_gets_labels_an_856_an_810_and_an_open_invoice(redis_url, database_url, tmp_path):
    async with running_stack(redis_url, database_url, edi_outbox=tmp_path / "out",
                             gs1_company_prefix="0712161") as stack:
        xyz, _ = await _world(stack)
        report = (await _upload(stack, "/v1/edi/imports", FIXTURE_1, fixture(FIXTURE_1))).json()
        order_id = report["orders"][0]["order_id"]
        body = {"method": "freight", "carrier": "ROADWAY", "bill_of_lading": "BOL-42", "weight_lb": 80.5,
                "pallets": 1,
                "lines": [{"sku": "AB3542", "quantity": 120}, {"sku": "RV0524", "quantity": 72}],
                "cartons": [{"lines": [{"sku": "AB3542", "quantity": 60}], "pallet": 1},
                            {"lines": [{"sku": "AB3542", "quantity": 60}], "pallet": 1},
                            {"lines": [{"sku": "RV0524", "quantity": 72}]}]}
        r = await stack.post(f"/v1/orders/{order_id}/shipments", body)
        assert r.status_code == 201, r.text
        shipment = r.json()
        ssccs = [c["sscc"] for c in shipment["cartons"]]
        assert len(set(ssccs)) == 3 and all(Sscc.parse(c) for c in ssccs) and len(shipment["pallet_ssccs"]) == 1
        # a second shipment never reuses a serial
        r = await stack.post(f"/v1/orders/{order_id}/shipments", {
            "method": "parcel", "lines": [{"sku": "DX1875", "quantity": 6}],
            "cartons": [{"lines": [{"sku": "DX1875", "quantity": 6}]}]})
        second = r.json()
        assert int(second["cartons"][0]["sscc"][8:17]) == int(shipment["pallet_ssccs"][0][8:17]) + 1
        labels = await stack.get(f"/v1/orders/{order_id}/shipments/{shipment['id']}/labels.pdf")
        assert labels.status_code == 200 and len(PdfReader(io.BytesIO(labels.content)).pages) == 3
        slip = await stack.get(f"/v1/orders/{order_id}/packing-slip.pdf", params={"shipment_id": shipment["id"]})
        assert ssccs[0] in PdfReader(io.BytesIO(slip.content)).pages[0].extract_text()
        docs = await _wait_for(stack, f"/v1/edi/documents?shipment_id={shipment['id']}",
                               lambda b: sorted(d["kind"] for d in b["items"] if d["status"] == "sent") == ["810", "856"])
        by_kind = {d["kind"]: d for d in docs["items"]}
        asn = asn856.parse((await _document(stack, by_kind["856"]["id"])).groups[0].sets[0])
        assert sorted(asn.ssccs) == sorted(ssccs + shipment["pallet_ssccs"])
        assert [lv.code for lv in asn.levels][:3] == ["S", "O", "T"] and asn.bill_of_lading == "BOL-42"
        assert asn.units == 192 and asn.declared_hl == len(asn.levels)
        inv = invoice810.parse((await _document(stack, by_kind["810"]["id"])).groups[0].sets[0])
        assert inv.po_number == "08292233294" and inv.total == inv.computed_total
        assert str(inv.total) == "1650.00"  # 120 x 9.25 + 72 x 7.50
        # the parcel shipment in whole cases of 6 also goes; its invoice too
        await _wait_for(stack, f"/v1/edi/documents?shipment_id={second['id']}&status=sent",
                        lambda b: b["total"] == 2)
        invoices = (await stack.get("/v1/invoices", params={"customer_id": xyz["id"], "status": "open"})).json()
        assert invoices["total"] == 2 and {i["total"] for i in invoices["items"]} == {"1650.00", "57.30"}
        assert all(i["payment_terms"] == "net_30" for i in invoices["items"])
        assert (await stack.get("/v1/invoices", params={"status": "overdue"})).json()["total"] == 0
        # a wholesale key sees only its own customer's invoices
        key = (await stack.post("/v1/api-keys", {"role": "wholesale", "customer_id": xyz["id"]})).json()["key"]
        mine = await stack.client.get("/v1/invoices", headers={"Authorization": f"Bearer {key}"})
        assert mine.json()["total"] == 2
        (one,) = [i for i in invoices["items"] if i["total"] == "1650.00"]
        assert (await stack.client.get(f"/v1/invoices/{one['id']}",
                                       headers={"Authorization": f"Bearer {key}"})).status_code == 200


async def test_a_shipment_without_cartons_blocks_its_856_with_the_reason(redis_url, database_url, tmp_path):
    async with running_stack(redis_url, database_url, edi_outbox=tmp_path / "out",
                             gs1_company_prefix="0712161") as stack:
        await _world(stack)
        report = (await _upload(stack, "/v1/edi/imports", FIXTURE_1, fixture(FIXTURE_1))).json()
        order_id = report["orders"][0]["order_id"]
        r = await stack.post(f"/v1/orders/{order_id}/shipments", {
            "method": "freight", "lines": [{"sku": "AB3542", "quantity": 10}]})
        shipment = r.json()
        docs = await _wait_for(stack, f"/v1/edi/documents?shipment_id={shipment['id']}&kind=856",
                               lambda b: b["total"] == 1)
        (doc,) = docs["items"]
        assert doc["status"] == "blocked" and doc["interchange_control"] is None
        assert "no cartons" in doc["reason"] and "bill of lading" in doc["reason"]
        assert (await stack.get(f"/v1/edi/documents/{doc['id']}/content")).status_code == 404
        r = await stack.post(f"/v1/edi/documents/{doc['id']}/recheck")
        assert r.status_code == 202
        again = await _wait_for(stack, f"/v1/edi/documents?shipment_id={shipment['id']}&kind=856",
                                lambda b: b["total"] == 1 and b["items"][0]["id"] != doc["id"])
        assert again["items"][0]["status"] == "blocked"


async def test_uploads_over_the_limit_get_413_before_they_are_read(redis_url, database_url, tmp_path):
    async with running_stack(redis_url, database_url, workers=False, edi_outbox=tmp_path / "out") as stack:
        host, port = stack.client.base_url.host, stack.client.base_url.port
        reader, writer = await asyncio.open_connection(host, port)
        size = 100 * 1024 * 1024
        writer.write((f"POST /v1/edi/imports HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      f"Authorization: {ADMIN['Authorization']}\r\n"
                      "Content-Type: multipart/form-data; boundary=xyz\r\n"
                      f"Content-Length: {size}\r\n\r\n").encode())
        writer.write(b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.edi\"\r\n\r\n")
        writer.write(b"ISA" + b"*" * 65536)
        await writer.drain()
        # answered after 64 KiB of the 100 MB: the body was never read
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 413")
        writer.close()
        # a file under the body limit but over ONHAND_IMPORT_MAX_BYTES is refused too
        r = await _upload(stack, "/v1/imports/orders", "x.csv", b"x" * (10 * 1024 * 1024 + 1))
        assert r.status_code == 413 and r.json()["type"] == "/problems/payload-too-large"
        # and a file that cannot be read is answered with a report naming why; a dry run changes nothing
        r = await _upload(stack, "/v1/imports/orders", "x.csv", b"PO,SKU\n1,A\n")
        assert r.status_code == 200 and r.json()["ok"] is False
        assert "missing column" in r.json()["problems"][0]["message"]
        r = await _upload(stack, "/v1/imports/orders", "x.csv", b"PO,SKU,Qty,Customer\n1,A,2,nobody\n",
                          dry_run="true")
        assert r.status_code == 200 and r.json()["orders"][0]["status"] == "rejected"
        assert stack.redis.xlen(stack.keys.outbox) == 0
