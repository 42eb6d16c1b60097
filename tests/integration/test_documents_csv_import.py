"""CSV imports: a dry run names every bad row and changes nothing; a real
run places each good order whole and leaves each bad one out whole; the
same file twice (or at once) creates nothing twice; customers too."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from sqlalchemy import create_engine

from engine.commands import PutRecord
from persistence import edi
from tests.conftest import ready_store
from tests.documents_support import add_customer, add_sku, drain, importer, op

pytestmark = pytest.mark.anyio

ORDERS = (
    "Customer,PO #,Item,UPC,Buyer Item,Qty,Price,Ship To Name\n"
    "ACME-1,P-100,W1,,,4,2.50,Store 7\n"          # 2
    "ACME-1,P-100,,012345678905,,2,,Store 7\n"    # 3: by UPC -> W2
    "ACME-1,P-100,,,THEIR-9,3,,Store 7\n"         # 4: by cross-reference -> W3
    "ACME-1,P-200,W1,,,1,,Store 8\n"              # 5
    "ACME-1,P-200,NOPE,,,1,,Store 8\n"            # 6: unknown SKU: P-200 out whole
    "ACME-1,P-300,W2,,,x,,Store 9\n"              # 7: bad quantity: P-300 out whole
    "Nobody,P-400,W1,,,1,,Store 1\n"              # 8: unknown customer
)


async def _setup(store, redis_url, database_url):
    await add_sku(store, "W1", 10)
    await add_sku(store, "W2", 10, upc="012345678905")
    await add_sku(store, "W3", 1)
    customer = await add_customer(store, "Acme Stores", backorder_policy="backorder")
    customer = {**customer, "account": "ACME-1"}
    await store.run(PutRecord(kind="customer", id=customer["id"], doc=msgspec.json.encode(customer).decode()),
                    op("cus"))
    await drain(store, redis_url, database_url)
    engine = create_engine(database_url)
    with engine.begin() as conn:
        edi.put_item_refs(conn, store.keys.merchant, customer["id"], {"THEIR-9": "W3"})
    engine.dispose()
    return customer


async def _orders(store) -> list[str]:
    return sorted([k.decode() async for k in store.redis.scan_iter(match=f"{store.keys.prefix}:o:*")])


async def test_dry_run_then_real_run_all_or_nothing_per_order(redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    customer = await _setup(store, redis_url, database_url)
    async with importer(store, redis_url, database_url, tmp_path) as imp:
        dry = await imp.orders_csv(ORDERS.encode(), dry_run=True)
        assert await _orders(store) == []
        by_po = {o.po_number: o for o in dry.orders}
        assert by_po["P-100"].status == "would_create"
        assert [(p.line, p.column) for p in by_po["P-200"].problems] == [(6, "Item")]
        assert [(p.line, p.column) for p in by_po["P-300"].problems] == [(7, "Qty")]
        assert [(p.line, p.column) for p in by_po["P-400"].problems] == [(8, "Customer")]

        real = await imp.orders_csv(ORDERS.encode())
    by_po = {o.po_number: o for o in real.orders}
    assert {po: o.status for po, o in by_po.items()} == {
        "P-100": "created", "P-200": "rejected", "P-300": "rejected", "P-400": "rejected"}
    (key,) = await _orders(store)
    order = await store.order(by_po["P-100"].order_id)
    assert [(l.sku, l.quantity, l.reserved, l.backordered) for l in order.lines] == [
        ("W1", 4, 4, 0), ("W2", 2, 2, 0), ("W3", 3, 1, 2)]
    assert order.header["customer_id"] == customer["id"] and order.header["source"] == "csv"
    assert order.header["lines"][0] == {"unit_price": "2.50"}

    async def again():
        async with importer(store, redis_url, database_url, tmp_path) as imp:
            return await imp.orders_csv(ORDERS.encode())

    reports = await asyncio.gather(*(again() for _ in range(4)))
    assert {next(o.status for o in r.orders if o.po_number == "P-100") for r in reports} == {"exists"}
    assert len(await _orders(store)) == 1
    assert (await store.order(by_po["P-100"].order_id)).version == order.version


async def test_missing_column_and_non_utf8_are_refused_and_change_nothing(redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    await _setup(store, redis_url, database_url)
    async with importer(store, redis_url, database_url, tmp_path) as imp:
        missing = await imp.orders_csv(b"Customer,PO,Item\nACME-1,P-1,W1\n")
        latin = await imp.orders_csv("Customer,PO,Item,Qty\nACME-1,P-1,W1,1\nACME-1,P-2,Caf\u00e9,1\n".encode("cp1252"))
    assert not missing.ok and "missing column 'quantity'" in missing.problems[0].message
    assert not latin.ok and latin.problems[0].line == 3 and "not utf-8" in latin.problems[0].message
    assert await _orders(store) == []


async def test_customers_import_is_idempotent(redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    data = ("Name,Account,Terms,ISA Qualifier,ISA ID,Item Qualifiers\n"
            "Corner Shop,C-1,net 30,,,\n"
            "Big Box,B-1,net 60,ZZ,BIGBOX,UP;VN\n"
            "Broken,X-1,net 45,,,\n").encode()
    async with importer(store, redis_url, database_url, tmp_path) as imp:
        dry = await imp.customers_csv(data, dry_run=True)
        assert [c.status for c in dry.customers] == ["would_create", "would_create", "rejected"]
        first = await imp.customers_csv(data)
        second = await imp.customers_csv(data)
    assert [c.status for c in first.customers] == ["created", "created", "rejected"]
    assert [c.status for c in second.customers] == ["unchanged", "unchanged", "rejected"]
    assert first.customers[1].customer_id == second.customers[1].customer_id
    keys = [k async for k in store.redis.scan_iter(match=f"{store.keys.prefix}:d:customer:*")]
    assert len(keys) == 2
    await drain(store, redis_url, database_url)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        (partner,) = edi.find_partners(conn, store.keys.merchant, "ZZ", "BIGBOX", None)
    engine.dispose()
    assert partner.customer["id"] == first.customers[1].customer_id
    assert partner.profile["payment_terms"] == "net_60" and partner.edi["item_qualifiers"] == ["UP", "VN"]


async def test_a_customers_import_keeps_what_the_file_does_not_name(redis_url, database_url, tmp_path):
    """A customer made through the API (company, account number) and then
    updated by a CSV keeps its company, and the file's account column is the
    API's account_number (the orders CSV finds the customer by it)."""
    from exchange.placing import customer_doc

    store = await ready_store(redis_url)
    async with importer(store, redis_url, database_url, tmp_path) as imp:
        first = await imp.customers_csv(b"Name,Account,Terms\nCorner Shop,C-7,net 30\n")
        (created,) = first.customers
        doc = await customer_doc(store, created.customer_id)
        assert doc["account_number"] == "C-7" and "account" not in doc
        doc = {**doc, "company": "Corner Shop Holdings Ltd"}
        await store.run(PutRecord(kind="customer", id=doc["id"], doc=msgspec.json.encode(doc).decode()), op("cus"))
        second = await imp.customers_csv(b"Name,Account,Terms,Email\nCorner Shop,C-7,net 30,buyer@corner.example\n")
        assert [c.status for c in second.customers] == ["updated"]
        after = await customer_doc(store, created.customer_id)
        assert after["company"] == "Corner Shop Holdings Ltd" and after["email"] == "buyer@corner.example"
        await add_sku(store, "W9", 5)
        await drain(store, redis_url, database_url)
        report = await imp.orders_csv(b"Customer,PO,Item,Qty\nc-7,P-ACCT,W9,1\n")
        assert [(o.status, o.customer_id) for o in report.orders] == [("created", created.customer_id)]


async def test_a_customer_made_a_moment_ago_is_found_before_postgresql_has_it(redis_url, database_url, tmp_path):
    """Acknowledged is visible: a customer whose record is still only in Redis
    (the outbox not drained yet) is found by name or account number, and a
    name changed in Redis wins over PostgreSQL's older row."""
    store = await ready_store(redis_url)
    await add_sku(store, "W1", 10)
    customer = await add_customer(store, "Fresh Stores", backorder_policy="backorder")
    fresh = {**customer, "account_number": "FR-1"}
    await store.run(PutRecord(kind="customer", id=fresh["id"], doc=msgspec.json.encode(fresh).decode()), op("cus"))
    async with importer(store, redis_url, database_url, tmp_path) as imp:
        report = await imp.orders_csv(b"Customer,PO,Item,Qty\nfr-1,P-F1,W1,1\nFresh Stores,P-F2,W1,1\n")
        assert [(o.status, o.customer_id) for o in report.orders] == [("created", fresh["id"])] * 2
        await drain(store, redis_url, database_url)
        renamed = {**fresh, "name": "Renamed Stores"}
        await store.run(PutRecord(kind="customer", id=fresh["id"], doc=msgspec.json.encode(renamed).decode()),
                        op("cus"))
        report = await imp.orders_csv(b"Customer,PO,Item,Qty\nFresh Stores,P-F3,W1,1\nRenamed Stores,P-F4,W1,1\n")
        assert [o.status for o in report.orders] == ["rejected", "created"]
