"""850s become wholesale orders through the engine, once per customer and PO
however often (and however concurrently) the file comes; the 997 and the 855
say what happened, line by line; bad files write nothing."""

from __future__ import annotations

import asyncio

import pytest

from documents.x12 import ack855, ack997
from documents.x12.reader import read
from tests.conftest import ready_store
from tests.documents_support import add_customer, add_sku, count, drain, fixture, importer

pytestmark = pytest.mark.anyio

PARTNER_1 = {"isa_qualifier": "12", "isa_id": "4405197800", "item_qualifiers": ["VN"]}


async def _setup_fixture_1(store, redis_url, database_url):
    # AB3542 in full, RD5322 in part, XY5266 none; VX2332 is not a SKU here
    for sku, on_hand in (("AB3542", 200), ("RD5322", 100), ("XY5266", 0), ("RV0524", 72), ("DX1875", 1000)):
        await add_sku(store, sku, on_hand)
    customer = await add_customer(store, "XYZ Retail", edi=PARTNER_1, payment_terms="net_30",
                                  backorder_policy="backorder")
    await drain(store, redis_url, database_url)
    return customer


def _docs(database_url, merchant, kind=None):
    sql = "SELECT count(*) FROM edi_documents WHERE merchant_id = :m" + (" AND kind = :k" if kind else "")
    return count(database_url, sql, m=merchant, k=kind)


def _read_doc(tmp_path, doc_id, database_url):
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as conn:
        content, filename = conn.execute(text("SELECT content, filename FROM edi_documents WHERE id = :i"),
                                         {"i": doc_id}).one()
    engine.dispose()
    assert (tmp_path / "out" / filename).read_text() == content  # written to the outbox folder
    (ic,) = read(content.encode())
    return ic


async def test_850_becomes_an_order_and_997_and_855_agree_line_by_line(redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    customer = await _setup_fixture_1(store, redis_url, database_url)
    async with importer(store, redis_url, database_url, tmp_path / "out") as imp:
        report = await imp.x12(fixture("01_850_4010VICS_node-x12.edi"))
    assert report.ok and not report.problems, report
    (outcome,) = report.orders
    assert outcome.status == "created" and outcome.customer_id == customer["id"]
    order = await store.order(outcome.order_id)
    assert order.channel.value == "wholesale" and order.header["po_number"] == "08292233294"
    assert order.header["source"] == "edi" and order.header["ship_to"]["location_id"] == "0003947268292"
    assert [(l.sku, l.quantity, l.reserved, l.backordered) for l in order.lines] == [
        ("AB3542", 120, 120, 0), ("RD5322", 220, 100, 120), ("XY5266", 126, 0, 126),
        ("RV0524", 72, 72, 0), ("DX1875", 696, 696, 0)]
    assert [(l.line, l.ack) for l in outcome.lines] == [
        ("1", ["IA"]), ("2", ["IA", "IB"]), ("3", ["IB"]), ("5", ["IA"]), ("6", ["IA"]), ("4", ["IR"])]
    kinds = sorted(d.kind for d in report.documents)
    assert kinds == ["855", "997"]
    by_kind = {d.kind: d for d in report.documents}
    # the 997: group 1421 accepted, its one set accepted
    ic997 = _read_doc(tmp_path, by_kind["997"].id, database_url)
    assert (ic997.receiver_qualifier, ic997.receiver_id) == ("12", "4405197800")
    (g997,) = ack997.parse(ic997.groups[0].sets[0])
    assert (g997.control, g997.status, g997.received, g997.accepted) == ("1421", "A", 1, 1)
    # the 855: per PO1 line, in the PO's order, what the reservation did
    ic855 = _read_doc(tmp_path, by_kind["855"].id, database_url)
    ack = ack855.parse(ic855.groups[0].sets[0])
    assert ack.po_number == "08292233294" and ack.type == "AC"
    assert [(l.line_no, l.acks) for l in ack.lines] == [
        ("1", [("IA", 120, "EA")]), ("2", [("IA", 100, "EA"), ("IB", 120, "EA")]),
        ("3", [("IB", 126, "EA")]), ("4", [("IR", 76, "EA")]), ("5", [("IA", 72, "EA")]),
        ("6", [("IA", 696, "EA")])]
    assert ic855.groups[0].version == "004010VICS" and ic855.control != ic997.control


async def test_a_resent_850_and_concurrent_imports_create_nothing_twice(redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    await _setup_fixture_1(store, redis_url, database_url)
    data = fixture("01_850_4010VICS_node-x12.edi")
    async with importer(store, redis_url, database_url, tmp_path / "out") as imp:
        first = await imp.x12(data)
    # Given the PO was imported, when the same file comes again five times at once
    async def again():
        async with importer(store, redis_url, database_url, tmp_path / "out") as imp:
            return await imp.x12(data)

    reports = await asyncio.gather(*(again() for _ in range(5)))
    # Then it is the same order, unchanged, and no document was made twice
    assert {r.orders[0].order_id for r in reports} == {first.orders[0].order_id}
    assert {r.orders[0].status for r in reports} == {"exists"}
    order = await store.order(first.orders[0].order_id)
    assert order.version == 1 and sum(l.reserved for l in order.lines) == 988
    assert _docs(database_url, store.keys.merchant) == 2
    assert {d.id for r in reports for d in r.documents} == {d.id for d in first.documents}


async def test_concurrent_first_imports_of_one_file_place_each_po_once(redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    await _setup_fixture_1(store, redis_url, database_url)
    data = fixture("01_850_4010VICS_node-x12.edi")

    async def one():
        async with importer(store, redis_url, database_url, tmp_path / "out") as imp:
            return await imp.x12(data)

    reports = await asyncio.gather(*(one() for _ in range(6)))
    statuses = sorted(r.orders[0].status for r in reports)
    assert statuses == ["created"] + ["exists"] * 5
    keys = [k async for k in store.redis.scan_iter(match=f"{store.keys.prefix}:o:*")]
    assert len(keys) == 1
    await drain(store, redis_url, database_url)
    assert count(database_url, "SELECT count(*) FROM orders") == 1
    assert _docs(database_url, store.keys.merchant, "855") == 1
    assert _docs(database_url, store.keys.merchant, "997") == 1
    controls = count(database_url, "SELECT count(DISTINCT isa_control) FROM edi_documents WHERE merchant_id = :m",
                     m=store.keys.merchant)
    assert controls == 2


def _broken(old: bytes, new: bytes) -> bytes:
    data = fixture("01_850_4010VICS_node-x12.edi")
    assert old in data
    return data.replace(old, new, 1)


@pytest.mark.parametrize("case", ["wrong SE count", "wrong hash total", "wrong line count"])
async def test_a_rejected_set_gets_a_997_r_and_no_order(case, redis_url, database_url, tmp_path):
    data = {"wrong SE count": _broken(b"SE*33*", b"SE*30*"),
            "wrong hash total": _broken(b"CTT*6~", b"CTT*6*1300~"),
            "wrong line count": _broken(b"CTT*6~", b"CTT*7~")}[case]
    store = await ready_store(redis_url)
    await _setup_fixture_1(store, redis_url, database_url)
    async with importer(store, redis_url, database_url, tmp_path / "out") as imp:
        report = await imp.x12(data)
    assert [o.status for o in report.orders] == ["rejected"] or not report.orders
    assert not [k async for k in store.redis.scan_iter(match=f"{store.keys.prefix}:o:*")]
    (doc,) = report.documents
    assert doc.kind == "997"
    (g,) = ack997.parse(_read_doc(tmp_path, doc.id, database_url).groups[0].sets[0])
    assert (g.status, g.accepted) == ("R", 0) and g.sets[0].status == "R"
    if case == "wrong SE count":
        assert g.sets[0].codes == ["4"]
    else:
        assert [e.segment_id for e in g.sets[0].errors] == ["CTT"]


@pytest.mark.parametrize("case", ["truncated", "unknown partner", "not addressed to us", "not X12"])
async def test_files_refused_whole_write_nothing(case, redis_url, database_url, tmp_path):
    good = fixture("01_850_4010VICS_node-x12.edi")
    data = {"truncated": good[: good.index(b"PO1*4")], "unknown partner": good.replace(b"4405197800", b"4405197801"),
            "not addressed to us": good, "not X12": b"PO,SKU,Qty\n1,A,2\n"}[case]
    overrides = {"edi_isa_id": "SOMEONEELSE"} if case == "not addressed to us" else {}
    store = await ready_store(redis_url)
    await _setup_fixture_1(store, redis_url, database_url)
    async with importer(store, redis_url, database_url, tmp_path / "out", **overrides) as imp:
        report = await imp.x12(data)
    assert not report.ok and report.problems and not report.documents
    message = report.problems[0].message
    assert {"truncated": "truncated", "unknown partner": "unknown trading partner",
            "not addressed to us": "not to this merchant", "not X12": "not an X12"}[case] in message
    assert not [k async for k in store.redis.scan_iter(match=f"{store.keys.prefix}:o:*")]
    assert _docs(database_url, store.keys.merchant) == 0


async def test_a_bad_line_is_left_out_reported_in_997_and_855(redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    await _setup_fixture_1(store, redis_url, database_url)
    async with importer(store, redis_url, database_url, tmp_path / "out") as imp:
        report = await imp.x12(_broken(b"PO1*5*72*", b"PO1*5*7.2*"))
    (outcome,) = report.orders
    assert outcome.status == "created"
    order = await store.order(outcome.order_id)
    assert [l.sku for l in order.lines] == ["AB3542", "RD5322", "XY5266", "DX1875"]
    by_kind = {d.kind: d for d in report.documents}
    (g,) = ack997.parse(_read_doc(tmp_path, by_kind["997"].id, database_url).groups[0].sets[0])
    assert g.status == "E" and g.sets[0].status == "E" and g.sets[0].errors[0].segment_id == "PO1"
    ack = ack855.parse(_read_doc(tmp_path, by_kind["855"].id, database_url).groups[0].sets[0])
    assert [l.acks[0][0] for l in ack.lines] == ["IA", "IA", "IB", "IR", "IR", "IA"]


async def test_dry_run_changes_nothing(redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    await _setup_fixture_1(store, redis_url, database_url)
    async with importer(store, redis_url, database_url, tmp_path / "out") as imp:
        report = await imp.x12(fixture("01_850_4010VICS_node-x12.edi"), dry_run=True)
    assert report.orders[0].status == "would_create" and not report.documents
    assert [l.sku for l in report.orders[0].lines][:3] == ["AB3542", "RD5322", "XY5266"]
    assert not [k async for k in store.redis.scan_iter(match=f"{store.keys.prefix}:o:*")]
    assert _docs(database_url, store.keys.merchant) == 0
