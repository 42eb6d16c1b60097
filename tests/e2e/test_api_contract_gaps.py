"""Gaps found by reading the code against the contract (issue 10): merged
lines, every failing field named, reads that see records PostgreSQL lacks,
paged keys, complete replays, ship_complete after its first shipment,
cancels of lines without a SKU, exception units on packing slips, the
backorder filter, the ledger and dead letters through the API."""

from __future__ import annotations

import io
import time

import pytest
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import create_engine, text

from engine.commands import Op, OrderLineRequest, PlaceOrder
from engine.store import Store
from persistence.rebuild import Rebuilder
from tests.harness import running_stack
from workers.outbox import MAX_FAILURES, Drainer

pytestmark = pytest.mark.anyio


async def _sku(stack, sku, on_hand=0, **body):
    assert (await stack.put(f"/v1/skus/{sku}", {"name": sku, **body})).status_code == 200
    if on_hand:
        r = await stack.post("/v1/inventory/receipts", {"reference": f"init-{sku}-{time.monotonic_ns()}",
                                                         "lines": [{"sku": sku, "quantity": on_hand}]})
        assert r.status_code == 201, r.text


async def _inv(stack, sku):
    return (await stack.get(f"/v1/inventory/{sku}")).json()


def _drain(stack) -> None:
    """Everything in the outbox into PostgreSQL (for stacks without workers)."""
    engine = create_engine(stack.settings.database_url)
    try:
        drainer = Drainer(stack.redis, engine, stack.keys, slot=901)
        while stack.redis.xlen(stack.keys.outbox):
            drainer.run_for(0.5)
    finally:
        engine.dispose()


async def test_lines_of_one_sku_are_merged_and_refused_when_one_line_cannot_hold_them(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False) as stack:
        await _sku(stack, "MRG", 10)
        # the sum is above the limit: the later line's quantity is at fault
        r = await stack.post("/v1/orders", {"channel": "wholesale", "lines": [
            {"sku": "MRG", "quantity": 600_000_000}, {"sku": "OTHER", "quantity": 1},
            {"sku": "MRG", "quantity": 500_000_000}]})
        assert r.status_code == 400, r.text
        [error] = r.json()["errors"]
        assert error["field"] == "lines[2].quantity"
        assert "lines[0]" in error["message"] and "1100000000" in error["message"]
        # two prices cannot become one
        r = await stack.post("/v1/orders", {"channel": "wholesale", "lines": [
            {"sku": "MRG", "quantity": 1, "unit_price": "2.00"}, {"sku": "MRG", "quantity": 1, "unit_price": "3.00"}]})
        assert r.status_code == 400
        assert [e["field"] for e in r.json()["errors"]] == ["lines[1].unit_price"]
        assert (await _inv(stack, "MRG"))["reserved"] == 0  # nothing was made
        # the same price, or one price: one line, summed, with the price kept
        r = await stack.post("/v1/orders", {"channel": "wholesale", "lines": [
            {"sku": "MRG", "quantity": 2}, {"sku": "MRG", "quantity": 3, "unit_price": "2.50"}]})
        assert r.status_code == 201, r.text
        [line] = r.json()["lines"]
        assert (line["quantity"], line["unit_price"], line["reserved"]) == (5, "2.50", 5)
        schema = (await stack.client.get("/schema/openapi.json")).json()
        assert "merged" in schema["components"]["schemas"]["OrderBody"]["properties"]["lines"]["description"]


async def test_a_400_names_every_failing_field(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False) as stack:
        r = await stack.post("/v1/orders", {"channel": "phone", "currency": "usd", "surprise": 1, "lines": [
            {"sku": "OK-1", "quantity": 1}, {"sku": ".bad", "quantity": 0}]})
        assert r.status_code == 400
        fields = sorted(e["field"] for e in r.json()["errors"])
        assert fields == ["channel", "currency", "lines[1].quantity", "lines[1].sku", "surprise"]
        r = await stack.post("/v1/customers", {"profiles": [{"channel": "x"}]})
        assert sorted(e["field"] for e in r.json()["errors"]) == ["name", "profiles[0].channel"]


async def test_customer_search_sees_a_customer_created_a_moment_ago_and_takes_wildcards_literally(
        redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False) as stack:
        older = (await stack.post("/v1/customers", {"name": "Annex Hardware", "profiles": [
            {"channel": "wholesale"}]})).json()
        _drain(stack)
        # not in PostgreSQL yet (no worker runs): found all the same
        new = (await stack.post("/v1/customers", {"name": "Ann_Smith 100%", "email": "ann@example.com",
                                                  "profiles": [{"channel": "wholesale"}]})).json()

        async def search(q: str, **params) -> list[str]:
            r = await stack.get("/v1/customers", params={"q": q, **params})
            assert r.status_code == 200, r.text
            return [c["id"] for c in r.json()["items"]]

        assert await search("ann") == [new["id"], older["id"]]  # newest first
        assert await search("ANN_") == [new["id"]]  # "_" is a character, not "any one"
        assert await search("100%") == [new["id"]]
        assert await search("%") == [new["id"]]
        assert await search("a_n") == []
        assert await search("EXAMPLE.com") == [new["id"]]
        assert await search("ann", limit=1, offset=1) == [older["id"]]
        # and once PostgreSQL has it, it is found once
        _drain(stack)
        assert await search("ann") == [new["id"], older["id"]]
        r = await stack.get("/v1/customers", params={"q": "ann"})
        assert r.json()["total"] == 2


async def test_api_keys_are_listed_in_pages_including_those_postgres_lacks(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False) as stack:
        made = []
        for i in range(5):
            r = await stack.post("/v1/api-keys", {"role": "operator", "name": f"k{i}"})
            made.append(r.json()["id"])
            if i == 2:
                _drain(stack)  # three in PostgreSQL, two only in Redis
        revoked = made.pop(0)
        assert (await stack.client.delete(f"/v1/api-keys/{revoked}",
                                          headers={"Authorization": "Bearer test-admin-key-0123456789"})
                ).status_code == 204
        pages = []
        for offset in (0, 2, 4):
            r = await stack.get("/v1/api-keys", params={"limit": 2, "offset": offset})
            assert r.status_code == 200, r.text
            assert r.json()["total"] == 4
            pages.extend(k["id"] for k in r.json()["items"])
        assert pages == list(reversed(made))  # newest first, each once, the revoked one gone
        assert (await stack.get("/v1/api-keys", params={"limit": 201})).status_code == 400


async def test_a_replayed_receipt_lists_every_fill_the_first_answer_did(redis_url, database_url):
    """Given ten backorders and a fill limit of three per call, a receipt
    fills them over four calls; its replay (also after Redis is rebuilt from
    PostgreSQL) lists the same ten fills."""
    async with running_stack(redis_url, database_url, workers=False, fill_limit=3) as stack:
        await _sku(stack, "FILL")
        for _ in range(10):
            r = await stack.post("/v1/orders", {"channel": "wholesale", "lines": [{"sku": "FILL", "quantity": 1}]})
            assert r.json()["lines"][0]["backordered"] == 1
        body = {"lines": [{"sku": "FILL", "quantity": 10}]}
        first = await stack.post("/v1/inventory/receipts", body, headers={"Idempotency-Key": "rcpt-1"})
        assert first.status_code == 201, first.text
        assert len(first.json()["fills"]) == 10
        again = await stack.post("/v1/inventory/receipts", body, headers={"Idempotency-Key": "rcpt-1"})
        assert again.status_code == 201 and again.json() == first.json()
        # Redis lost and rebuilt from PostgreSQL: the record comes back whole
        _drain(stack)
        for key in list(stack.redis.scan_iter(match=stack.keys.pattern(), count=1000)):
            stack.redis.delete(key)
        engine = create_engine(stack.settings.database_url)
        try:
            Rebuilder(stack.redis, engine, stack.keys).run()
        finally:
            engine.dispose()
        rebuilt = await stack.post("/v1/inventory/receipts", body, headers={"Idempotency-Key": "rcpt-1"})
        assert rebuilt.status_code == 201 and rebuilt.json() == first.json()
        assert (await _inv(stack, "FILL"))["on_hand"] == 10


async def test_a_ship_complete_order_ships_in_parts_once_it_was_complete(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False) as stack:
        await _sku(stack, "SC", 10)
        r = await stack.post("/v1/orders", {"channel": "wholesale", "backorder_policy": "ship_complete",
                                            "lines": [{"sku": "SC", "quantity": 10}]})
        oid = r.json()["id"]
        ship = {"method": "freight", "lines": [{"sku": "SC", "quantity": 4}]}
        assert (await stack.post(f"/v1/orders/{oid}/shipments", ship)).status_code == 201
        # a count takes 3 units back: the order is short again
        count = await stack.put("/v1/inventory/SC", {"on_hand": 3, "reason": "count"})
        assert count.status_code == 200, count.text
        assert (await stack.get(f"/v1/orders/{oid}")).json()["lines"][0]["backordered"] == 3
        # it shipped complete once: the rest may ship in parts
        ship["lines"][0]["quantity"] = 2
        r = await stack.post(f"/v1/orders/{oid}/shipments", ship)
        assert r.status_code == 201, r.text
        # an order that never was complete still waits
        r = await stack.post("/v1/orders", {"channel": "wholesale", "backorder_policy": "ship_complete",
                                            "lines": [{"sku": "SC", "quantity": 5}]})
        other = r.json()["id"]
        r = await stack.post(f"/v1/orders/{other}/shipments", {"method": "parcel", "lines": [
            {"sku": "SC", "quantity": 1}]})
        assert r.status_code == 409 and r.json()["reason"] == "not_complete"


async def test_exception_lines_without_a_usable_sku_are_cancelled_per_line(redis_url, database_url):
    """A Shopify order keeps lines with no SKU or an unknown, malformed one as
    exception units; staff cancel them by line index or by that text."""
    async with running_stack(redis_url, database_url, workers=False) as stack:
        await _sku(stack, "REAL", 5)
        redis = AsyncRedis.from_url(stack.settings.redis_url)
        try:
            store = Store(redis, stack.settings.merchant)
            await store.start()
            await store.run(PlaceOrder(order_id="shp_gaps", channel="dtc", policy="accept", unknown_sku="exception",
                                       lines=(OrderLineRequest(sku=None, qty=2),
                                              OrderLineRequest(sku="ACM/8900 400", qty=3),
                                              OrderLineRequest(sku="REAL", qty=1))),
                            Op(op_id="gaps-1", now_ms=int(time.time() * 1000), actor="shopify"))
        finally:
            await redis.aclose()
        cancel = "/v1/orders/shp_gaps/cancel"
        r = await stack.post(cancel, {"lines": [{"line": 0, "quantity": 1}]})
        assert r.status_code == 200, r.text
        r = await stack.post(cancel, {"lines": [{"sku": "ACM/8900 400", "quantity": 3}]})
        assert r.status_code == 200, r.text
        lines = r.json()["lines"]
        assert [(l["exception"], l["cancelled"]) for l in lines[:2]] == [(1, 1), (0, 3)]
        assert lines[2]["reserved"] == 1
        r = await stack.post(cancel, {"lines": [{"line": 0, "quantity": 2}]})
        assert r.status_code == 409 and r.json()["reason"] == "cancel_exceeds_open"
        assert r.json()["line"] == 0 and r.json()["open"] == 1
        r = await stack.post(cancel, {"lines": [{"line": 7, "quantity": 1}]})
        assert r.status_code == 409 and r.json()["reason"] == "not_on_order"
        r = await stack.post(cancel, {"lines": [{"line": 0, "sku": "REAL", "quantity": 1}]})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "lines[0]"
        # a SKU and one of its lines in one request cannot cancel a unit twice
        r = await stack.post(cancel, {"lines": [{"sku": "REAL", "quantity": 1}, {"line": 2, "quantity": 1}]})
        assert r.status_code == 409 and r.json()["reason"] == "cancel_exceeds_open"
        assert (await _inv(stack, "REAL"))["reserved"] == 1


async def test_the_packing_slip_tells_exception_units_from_backorders(redis_url, database_url):
    from pypdf import PdfReader

    async with running_stack(redis_url, database_url, workers=False) as stack:
        await _sku(stack, "SLIP", 2)
        r = await stack.post("/v1/orders", {"channel": "dtc", "backorder_policy": "accept",
                                            "lines": [{"sku": "SLIP", "quantity": 5}]})
        oid = r.json()["id"]
        assert r.json()["lines"][0]["exception"] == 3
        pdf = await stack.get(f"/v1/orders/{oid}/packing-slip.pdf")
        page = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
        assert "nothing backordered" in page
        after = page.split("Not in stock, being resolved by our staff", 1)[1]
        assert "SLIP" in after and "3" in after


async def test_orders_are_listed_by_whether_they_wait_for_stock(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False) as stack:
        await _sku(stack, "BOF", 3)
        covered = (await stack.post("/v1/orders", {"channel": "dtc", "lines": [
            {"sku": "BOF", "quantity": 1}]})).json()["id"]
        waiting = (await stack.post("/v1/orders", {"channel": "wholesale", "lines": [
            {"sku": "BOF", "quantity": 5}]})).json()["id"]

        async def listed(flag: str) -> set[str]:
            r = await stack.get("/v1/orders", params={"backordered": flag, "sku": "BOF"})
            assert r.status_code == 200, r.text
            return {o["id"] for o in r.json()["items"]}

        for _ in range(2):  # from Redis (not yet in PostgreSQL), then from PostgreSQL
            assert await listed("true") == {waiting}
            assert await listed("false") == {covered}
            _drain(stack)


async def test_the_ledger_is_read_through_the_api(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        await _sku(stack, "LED", 10)
        oid = (await stack.post("/v1/orders", {"channel": "wholesale", "lines": [
            {"sku": "LED", "quantity": 4}]})).json()["id"]
        await stack.post(f"/v1/orders/{oid}/shipments", {"method": "parcel", "lines": [{"sku": "LED", "quantity": 4}]})
        await stack.drained()
        r = await stack.get("/v1/ledger", params={"sku": "LED"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["pending_events"] == 0 and body["total"] == 3
        assert [(e["reason"], e["on_hand"], e["reserved_wholesale"]) for e in body["items"]] == [
            ("ship", -4, -4), ("reserve", 0, 4), ("receipt", 10, 0)]
        assert body["items"][0]["actor"].startswith("key:") and body["items"][0]["order_id"] == oid
        r = await stack.get("/v1/ledger", params={"order_id": oid, "reason": "reserve"})
        assert [e["units"] for e in r.json()["items"]] == [4]
        reserved_at = body["items"][1]["at"]
        r = await stack.get("/v1/ledger", params={"sku": "LED", "since": reserved_at})
        assert r.json()["total"] == 2
        r = await stack.get("/v1/ledger", params={"sku": "LED", "until": reserved_at})
        assert [e["reason"] for e in r.json()["items"]] == ["receipt"]
        assert (await stack.get("/v1/ledger", params={"since": "2026-01-01T00:00:00"})).status_code == 400


async def test_dead_letters_are_listed_replayed_once_fixed_and_discarded(redis_url, database_url):
    """Given orders whose outbox entries keep failing (PostgreSQL's column is
    too short for their PO numbers, as a bad migration would leave it), they
    are dead-lettered; once the column is fixed, a replay applies one, and
    another is discarded with a note."""
    async with running_stack(redis_url, database_url, workers=False) as stack:
        await _sku(stack, "DL", 10)
        _drain(stack)
        engine = create_engine(stack.settings.database_url)
        try:
            with engine.begin() as conn:
                conn.execute(text("ALTER TABLE orders ALTER COLUMN po_number TYPE varchar(4)"))
            ids = [(await stack.post("/v1/orders", {"channel": "wholesale", "po_number": f"PO-LONG-{i}",
                                                    "lines": [{"sku": "DL", "quantity": 1}]})).json()["id"]
                   for i in range(2)]
            drainer = Drainer(stack.redis, engine, stack.keys, slot=902)
            for _ in range(MAX_FAILURES + 1):
                drainer.run_for(0.3)
            assert stack.redis.xlen(stack.keys.outbox) == 0
            listed = (await stack.get("/v1/dead-letters", params={"status": "open"})).json()
            assert listed["total"] == 2
            first, second = sorted(listed["items"], key=lambda d: d["event_id"])
            assert "StringDataRightTruncation" in first["error"] or "too long" in first["error"]
            # failing again while the cause is there: 409, still open
            r = await stack.post(f"/v1/dead-letters/{first['event_id']}/replay", {})
            assert r.status_code == 409 and r.json()["reason"] == "failed_again"
            with engine.begin() as conn:
                conn.execute(text("ALTER TABLE orders ALTER COLUMN po_number TYPE varchar(128)"))
            r = await stack.post(f"/v1/dead-letters/{first['event_id']}/replay", {"note": "column widened"})
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "replayed" and r.json()["resolved_by"].startswith("key:")
            with engine.connect() as conn:
                assert conn.execute(text("SELECT po_number FROM orders WHERE id = :i"), {"i": ids[0]}).scalar() \
                    == "PO-LONG-0"
            # PostgreSQL has it now: Redis no longer lists it as unsynced
            assert not stack.redis.sismember(stack.keys.unsynced, ids[0])
            r = await stack.post(f"/v1/dead-letters/{first['event_id']}/replay", {})
            assert r.status_code == 409 and r.json()["reason"] == "already_resolved"
            assert (await stack.post(f"/v1/dead-letters/{second['event_id']}/discard", {})).status_code == 400
            r = await stack.post(f"/v1/dead-letters/{second['event_id']}/discard", {"note": "test order"})
            assert r.status_code == 200 and r.json()["status"] == "discarded"
            assert (await stack.get("/v1/dead-letters", params={"status": "open"})).json()["total"] == 0
            assert (await stack.post("/v1/dead-letters/1-1/replay", {})).status_code == 404
        finally:
            engine.dispose()
