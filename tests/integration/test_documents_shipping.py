"""Cartons get SSCCs from a counter that never goes back (across shipments,
a Redis kill -9 and restart, a rebuild from PostgreSQL); each wholesale
shipment gets one invoice due by its terms; the 856 and 810 are made from
PostgreSQL after the ASN readiness check, or the 856 is blocked with why."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from biip.sscc import Sscc
from redis.asyncio import Redis
from sqlalchemy import create_engine, text

from documents.x12 import asn856, invoice810
from documents.x12.reader import read
from engine.commands import ShipOrder, SkuQty
from engine.store import Store
from exchange.shipment_docs import ShipmentDocuments
from onhand.embedded import start_valkey
from persistence.rebuild import Rebuilder
from persistence.shipping import SSCC_REBUILD_GAP
from tests.conftest import ready_store
from tests.documents_support import add_customer, add_sku, drain, fixture, importer, op, settings_for
from tests.servers import new_merchant, own_dir, remove_dir

pytestmark = pytest.mark.anyio
PREFIX = "00712161"  # extension 0 + company prefix 0712161: 9-digit serials


def _ship(order_id: str, cartons: list[list[tuple[str, int]]], method="parcel", **extra) -> ShipOrder:
    lines: dict[str, int] = {}
    for carton in cartons:
        for sku, qty in carton:
            lines[sku] = lines.get(sku, 0) + qty
    shipment = {"id": "shp_" + op().op_id[-16:], "method": method, "carrier": "ROADWAY",
                "cartons": [{"number": i + 1, "lines": [{"sku": s, "quantity": q} for s, q in c]}
                            for i, c in enumerate(cartons)], **extra}
    return ShipOrder(order_id=order_id, shipment=shipment, sscc_prefix=PREFIX,
                     lines=tuple(SkuQty(sku=s, qty=q) for s, q in lines.items()))


async def _wholesale_order(store: Store, order_id: str, lines: dict[str, int]) -> None:
    from engine.commands import OrderLineRequest, PlaceOrder

    for sku, qty in lines.items():
        await add_sku(store, sku, qty * 10)
    await store.run(PlaceOrder(order_id=order_id, channel="wholesale", policy="backorder",
                               lines=tuple(OrderLineRequest(sku=s, qty=q) for s, q in lines.items()),
                               doc='{"customer_id":"c1","payment_terms":"net_30","lines":[{"unit_price":"2.50"}]}'),
                    op())


def _serials(result) -> list[int]:
    return [c["serial"] for c in result.data["shipment"]["cartons"]]


async def test_serials_never_repeat_across_shipments_and_a_rebuild(redis_url, database_url):
    store = await ready_store(redis_url)
    await _wholesale_order(store, "o1", {"A": 50})
    first = await store.run(_ship("o1", [[("A", 5)], [("A", 5)]]), op())
    second = await store.run(_ship("o1", [[("A", 5)]]), op())
    assert _serials(second)[0] == _serials(first)[-1] + 1
    codes = [c["sscc"] for r in (first, second) for c in r.data["shipment"]["cartons"]]
    assert len(set(codes)) == 3 and all(Sscc.parse(c).company_prefix.value == "0712161" for c in codes)
    # When Redis is rebuilt from PostgreSQL
    await drain(store, redis_url, database_url)
    from redis import Redis as SyncRedis

    sync = SyncRedis.from_url(redis_url)
    engine = create_engine(database_url)
    try:
        Rebuilder(sync, engine, store.keys).run(force=True)
    finally:
        engine.dispose()
        sync.close()
    third = await store.run(_ship("o1", [[("A", 5)]]), op())
    # Then the next serial is above every one handed out, and above the gap
    assert _serials(third)[0] == _serials(second)[0] + SSCC_REBUILD_GAP + 1
    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT serial FROM shipment_cartons WHERE merchant_id = :m ORDER BY serial"),
                              {"m": store.keys.merchant}).scalars().all()
    engine.dispose()
    assert stored == _serials(first) + _serials(second)


async def test_serials_survive_a_redis_kill_9_and_restart(tmp_path):
    path = own_dir("valkey-sscc")
    server = start_valkey(path)
    try:
        redis = Redis.from_url(server.url)
        store = Store(redis, new_merchant())
        await store.start()
        await redis.set(store.keys.epoch, "test")
        await _wholesale_order(store, "o1", {"A": 20})
        before = await store.run(_ship("o1", [[("A", 2)], [("A", 2)]]), op())
        await redis.aclose()
        server.kill()
        server = start_valkey(path)
        redis = Redis.from_url(server.url)
        store = Store(redis, store.keys.merchant)
        after = await store.run(_ship("o1", [[("A", 2)]]), op())
        assert _serials(after) == [_serials(before)[-1] + 1]
        await redis.aclose()
    finally:
        server.stop()
        remove_dir(path)


async def test_pallets_get_their_own_ssccs(redis_url):
    store = await ready_store(redis_url)
    await _wholesale_order(store, "o1", {"A": 30})
    cmd = _ship("o1", [[("A", 5)], [("A", 5)], [("A", 5)]])
    cmd.shipment["cartons"][0]["pallet"] = 1
    cmd.shipment["cartons"][1]["pallet"] = 2
    result = await store.run(cmd, op())
    shipment = result.data["shipment"]
    assert len(shipment["pallet_ssccs"]) == 2 and shipment["pallet_serials"] == [
        _serials(result)[-1] + 1, _serials(result)[-1] + 2]
    assert len({*shipment["pallet_ssccs"], *(c["sscc"] for c in shipment["cartons"])}) == 5


PARTNER = {"isa_qualifier": "12", "isa_id": "4405197800", "item_qualifiers": ["VN"]}


async def test_shipments_of_an_edi_order_get_invoices_an_856_and_an_810(redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    for sku, on_hand in (("AB3542", 500), ("RD5322", 500), ("XY5266", 500), ("VX2332", 500),
                         ("RV0524", 500), ("DX1875", 1000)):
        await add_sku(store, sku, on_hand, case_pack=4 if sku == "AB3542" else None)
    await add_customer(store, "XYZ Retail", edi=PARTNER, payment_terms="net_30")
    await drain(store, redis_url, database_url)
    async with importer(store, redis_url, database_url, tmp_path / "out") as imp:
        report = await imp.x12(fixture("01_850_4010VICS_node-x12.edi"))
    order_id = report.orders[0].order_id
    # a good freight shipment in two cartons, and one with a carton not in whole cases, no bill of lading
    good = _ship(order_id, [[("AB3542", 60)], [("AB3542", 60), ("RD5322", 20)]], method="freight",
                 bill_of_lading="BOL-1", weight_lb=42.5)
    bad = _ship(order_id, [[("RD5322", 10)]], method="freight")
    bad.shipment["cartons"][0]["lines"] = [{"sku": "RD5322", "quantity": 9}]  # one unit in no carton
    r_good = await store.run(good, op())
    r_bad = await store.run(bad, op())
    await drain(store, redis_url, database_url)
    settings = settings_for(store, redis_url, database_url, tmp_path / "out")
    from redis import Redis as SyncRedis

    sync = SyncRedis.from_url(redis_url)
    engine = create_engine(database_url)
    try:
        result = ShipmentDocuments(sync, engine, store.keys, settings).run()
        again = ShipmentDocuments(sync, engine, store.keys, settings).run()
        with engine.connect() as conn:
            docs = conn.execute(text("SELECT kind, status, shipment_id, reason, content FROM edi_documents "
                                     "WHERE merchant_id = :m AND kind IN ('856','810') ORDER BY kind, status"),
                                {"m": store.keys.merchant}).all()
            invoices = conn.execute(text("SELECT shipment_id, number, invoice_date, due_date, total FROM invoices "
                                         "WHERE merchant_id = :m ORDER BY number"), {"m": store.keys.merchant}).all()
    finally:
        engine.dispose()
        sync.close()
    assert len(result.sent) == 3 and len(result.blocked) == 1 and again.sent == [] and again.blocked == []
    good_id, bad_id = r_good.data["shipment"]["id"], r_bad.data["shipment"]["id"]
    # one invoice per shipment, due 30 days after the ship date
    assert [i.shipment_id for i in invoices] == [good_id, bad_id]
    assert invoices[1].number == invoices[0].number + 1
    assert all(i.due_date == i.invoice_date + timedelta(days=30) for i in invoices)
    assert invoices[0].total == Decimal(120) * Decimal("9.25") + Decimal(20) * Decimal("13.79")
    by = {(d.kind, d.shipment_id): d for d in docs}
    blocked = by[("856", bad_id)]
    assert blocked.status == "blocked" and blocked.content is None
    assert blocked.reason == ("RD5322: 10 units shipped, 9 in cartons; "
                              "a freight shipment needs a bill of lading (bill_of_lading)")
    asn = asn856.parse(read(by[("856", good_id)].content.encode())[0].groups[0].sets[0])
    ssccs = [c["sscc"] for c in r_good.data["shipment"]["cartons"]]
    assert asn.ssccs == ssccs and asn.bill_of_lading == "BOL-1" and asn.po_numbers == ["08292233294"]
    assert asn.units == 140 and asn.declared_hl == len(asn.levels) and asn.structure == "0001"
    inv810 = invoice810.parse(read(by[("810", good_id)].content.encode())[0].groups[0].sets[0])
    assert inv810.po_number == "08292233294" and inv810.total == invoices[0].total
    assert inv810.terms[6] == "30" and inv810.terms[5] == (invoices[0].invoice_date + timedelta(days=30)).strftime("%Y%m%d")
    assert by[("810", bad_id)].status == "sent"
    assert len([p for p in (tmp_path / "out").iterdir() if "-856-" in p.name or "-810-" in p.name]) == 3
    assert date.today() - invoices[0].invoice_date <= timedelta(days=1)
