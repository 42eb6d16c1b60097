"""Backorder policies, cancels, counts and the ring-fence over HTTP."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import create_engine

from persistence.reconcile import reconcile
from tests.harness import running_stack

pytestmark = pytest.mark.anyio


async def _sku(stack, sku, on_hand, **body):
    assert (await stack.put(f"/v1/skus/{sku}", {"name": sku, **body})).status_code == 200
    if on_hand:
        r = await stack.post("/v1/inventory/receipts", {"reference": f"init-{sku}",
                                                         "lines": [{"sku": sku, "quantity": on_hand}]})
        assert r.status_code == 201, r.text


async def _order(stack, channel, lines, policy=None, **extra):
    body = {"channel": channel, "lines": [{"sku": s, "quantity": q} for s, q in lines], **extra}
    if policy:
        body["backorder_policy"] = policy
    return await stack.post("/v1/orders", body)


async def _inv(stack, sku):
    return (await stack.get(f"/v1/inventory/{sku}")).json()


async def test_each_policy_with_partial_availability(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        await _sku(stack, "P1", 10)
        await _sku(stack, "P2", 10)

        # backorder: reserve what is there, backorder the rest
        r = await _order(stack, "wholesale", [("P1", 6)], "backorder")
        assert r.status_code == 201
        line = r.json()["lines"][0]
        assert (line["reserved"], line["backordered"], r.json()["status"]) == (6, 0, "open")

        # ship_complete: partial reservation, no shipment until complete
        r = await _order(stack, "wholesale", [("P1", 6), ("P2", 2)], "ship_complete")
        sc = r.json()
        assert [(l["reserved"], l["backordered"]) for l in sc["lines"]] == [(4, 2), (2, 0)]
        r = await stack.post(f"/v1/orders/{sc['id']}/shipments",
                             {"lines": [{"sku": "P2", "quantity": 2}], "method": "parcel"})
        assert r.status_code == 409
        assert r.json()["type"] == "/problems/conflict" and r.json()["reason"] == "not_complete"

        # cancel_remainder with nothing available: 201, cancelled
        r = await _order(stack, "wholesale", [("P1", 3)], "cancel_remainder")
        assert r.status_code == 201
        assert r.json()["status"] == "cancelled" and r.json()["lines"][0]["cancelled"] == 3
        # cancel_remainder with some available: keeps it, cancels the rest
        r = await _order(stack, "wholesale", [("P2", 9)], "cancel_remainder")
        assert [(l["reserved"], l["cancelled"]) for l in r.json()["lines"]] == [(8, 1)]

        # all_or_nothing: refused in full, with what is available
        before = await _inv(stack, "P1")
        r = await _order(stack, "dtc", [("P1", 1)], "all_or_nothing")
        assert r.status_code == 409
        body = r.json()
        assert body["type"] == "/problems/insufficient-stock"
        assert body["lines"] == [{"sku": "P1", "requested": 1, "available": 0}]
        assert await _inv(stack, "P1") == before

        # accept: DTC, staff keys: exception units
        r = await _order(stack, "dtc", [("P1", 2)], "accept")
        assert r.json()["status"] == "exception"
        assert r.json()["lines"][0]["exception"] == 2 and r.json()["lines"][0]["exception_reason"] == "oversold"
        r = await _order(stack, "wholesale", [("P1", 2)], "accept")
        assert r.status_code == 400

        # a receipt fills in acceptance order: the ship_complete order first
        r = await stack.post("/v1/inventory/receipts", {"reference": "R-P1", "lines": [{"sku": "P1", "quantity": 3}]})
        assert r.json()["fills"][0]["order_id"] == sc["id"]
        # now complete: it may ship, in parts
        sc = (await stack.get(f"/v1/orders/{sc['id']}")).json()
        assert [l["backordered"] for l in sc["lines"]] == [0, 0]
        r = await stack.post(f"/v1/orders/{sc['id']}/shipments",
                             {"lines": [{"sku": "P2", "quantity": 2}], "method": "parcel"})
        assert r.status_code == 201

        # shipping more than reserved is a conflict; nothing changes
        before = await _inv(stack, "P1")
        r = await stack.post(f"/v1/orders/{sc['id']}/shipments",
                             {"lines": [{"sku": "P1", "quantity": 7}], "method": "parcel"})
        assert r.status_code == 409 and r.json()["reason"] == "ship_exceeds_reserved"
        assert await _inv(stack, "P1") == before


async def test_a_cancel_releases_units_that_fill_an_older_backorder(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        await _sku(stack, "C1", 5)
        first = (await _order(stack, "wholesale", [("C1", 5)], "backorder")).json()
        older = (await _order(stack, "wholesale", [("C1", 4)], "backorder")).json()
        assert older["lines"][0]["backordered"] == 4
        r = await stack.post(f"/v1/orders/{first['id']}/cancel", {"lines": [{"sku": "C1", "quantity": 3}]})
        assert r.status_code == 200
        assert r.json()["lines"][0]["cancelled"] == 3
        assert r.json()["fills"] == [{"sku": "C1", "order_id": older["id"], "units": 3}]
        older = (await stack.get(f"/v1/orders/{older['id']}")).json()
        assert (older["lines"][0]["reserved"], older["lines"][0]["backordered"]) == (3, 1)
        # cancelling the whole remainder of a partly shipped order
        await stack.post(f"/v1/orders/{first['id']}/shipments",
                         {"lines": [{"sku": "C1", "quantity": 2}], "method": "parcel"})
        r = await stack.post(f"/v1/orders/{first['id']}/cancel", {})
        assert r.status_code == 409 and r.json()["reason"] == "nothing_to_cancel"
        r = await stack.post(f"/v1/orders/{older['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"


async def test_ring_fence_holds_against_wholesale_orders_and_fills(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        await _sku(stack, "F1", 10, dtc_reserve=4)
        inv = await _inv(stack, "F1")
        assert (inv["available"], inv["available_to_wholesale"]) == (10, 6)
        w = (await _order(stack, "wholesale", [("F1", 9)], "backorder")).json()
        assert (w["lines"][0]["reserved"], w["lines"][0]["backordered"]) == (6, 3)
        # DTC may use the fenced units
        d = (await _order(stack, "dtc", [("F1", 3)], "all_or_nothing")).json()
        assert d["lines"][0]["reserved"] == 3
        # a receipt of 2 does not go to the wholesale backorder: it would break the fence
        r = await stack.post("/v1/inventory/receipts", {"reference": "F-R1", "lines": [{"sku": "F1", "quantity": 2}]})
        assert r.json()["fills"] == []
        inv = await _inv(stack, "F1")
        assert (inv["available"], inv["available_to_wholesale"], inv["backordered"]) == (3, 0, 3)
        # lowering the fence fills the wholesale backorder at once
        r = await stack.put("/v1/skus/F1", {"dtc_reserve": 1})
        assert r.json()["fills"] == [{"sku": "F1", "order_id": w["id"], "units": 2}]
        inv = await _inv(stack, "F1")
        assert (inv["available"], inv["dtc_reserve"], inv["backordered"]) == (1, 1, 1)


async def test_count_below_reserved_takes_back_from_the_newest(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        await _sku(stack, "K1", 10)
        old = (await _order(stack, "wholesale", [("K1", 4)], "backorder")).json()
        dtc = (await _order(stack, "dtc", [("K1", 3)], "all_or_nothing")).json()
        cr = (await _order(stack, "wholesale", [("K1", 2)], "cancel_remainder")).json()
        # a count finds 5 where 10 were: 9 reserved, 4 units taken back, newest first
        r = await stack.put("/v1/inventory/K1", {"on_hand": 5, "reason": "count", "expected_on_hand": 10})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["taken_back"] == [
            {"order_id": cr["id"], "sku": "K1", "units": 2, "became": "cancelled"},
            {"order_id": dtc["id"], "sku": "K1", "units": 2, "became": "exception"},
        ]
        assert (body["inventory"]["on_hand"], body["inventory"]["available"]) == (5, 0)
        dtc = (await stack.get(f"/v1/orders/{dtc['id']}")).json()
        assert dtc["status"] == "exception" and dtc["lines"][0]["exception_reason"] == "stock_count"
        # a count taken while stock moved is refused
        r = await stack.put("/v1/inventory/K1", {"on_hand": 7, "reason": "count", "expected_on_hand": 10})
        assert r.status_code == 409 and r.json()["reason"] == "count_stale"
        # negative adjustments below reserved: the DTC order's last unit, then
        # the older wholesale order, whose units become backorders
        r = await stack.post("/v1/inventory/K1/adjustments", {"delta": -2, "reason": "damage"})
        assert r.json()["taken_back"] == [
            {"order_id": dtc["id"], "sku": "K1", "units": 1, "became": "exception"},
            {"order_id": old["id"], "sku": "K1", "units": 1, "became": "backordered"}]
        # below zero is refused
        r = await stack.post("/v1/inventory/K1/adjustments", {"delta": -5, "reason": "damage"})
        assert r.status_code == 409 and r.json()["reason"] == "negative_on_hand"
        # a receipt reference can be used once
        r = await stack.post("/v1/inventory/receipts", {"reference": "ASN-9", "lines": [{"sku": "K1", "quantity": 1}]})
        assert r.status_code == 201
        before = await _inv(stack, "K1")
        r = await stack.post("/v1/inventory/receipts", {"reference": "ASN-9", "lines": [{"sku": "K1", "quantity": 1}]})
        assert r.status_code == 409 and r.json()["reason"] == "reference_used"
        assert await _inv(stack, "K1") == before
        r = await stack.post("/v1/inventory/receipts", {"lines": [{"sku": "K1", "quantity": 1}]})
        assert r.status_code == 400


async def test_shipment_cancel_count_and_return_leave_everything_in_agreement(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        await _sku(stack, "A1", 20)
        await _sku(stack, "A2", 20)
        o = (await _order(stack, "wholesale", [("A1", 8), ("A2", 5)], "backorder")).json()
        r = await stack.post(f"/v1/orders/{o['id']}/shipments",
                             {"lines": [{"sku": "A1", "quantity": 6}], "method": "freight", "tracking_number": "T1"})
        assert r.status_code == 201
        r = await stack.post(f"/v1/orders/{o['id']}/cancel", {"lines": [{"sku": "A2", "quantity": 2}]})
        assert r.status_code == 200
        r = await stack.put("/v1/inventory/A2", {"on_hand": 17, "reason": "count"})
        assert r.status_code == 200
        r = await stack.post("/v1/returns", {"order_id": o["id"], "reason": "damaged in transit", "lines": [
            {"sku": "A1", "quantity": 2, "restock": True}, {"sku": "A1", "quantity": 1, "restock": False}]})
        assert r.status_code == 201, r.text
        ret = r.json()
        assert {(l["sku"], l["quantity"], l["restock"]) for l in ret["lines"]} == {("A1", 2, True), ("A1", 1, False)}
        r = await stack.post("/v1/returns", {"order_id": o["id"], "lines": [{"sku": "A1", "quantity": 9, "restock": True}]})
        assert r.status_code == 409 and r.json()["reason"] == "return_exceeds_shipped"
        inv = await _inv(stack, "A1")
        assert (inv["on_hand"], inv["reserved"]) == (20 - 6 + 2, 2)
        await stack.drained()
        engine = create_engine(stack.settings.database_url)
        result = await asyncio.to_thread(reconcile, stack.redis, engine, stack.keys, settle_s=0.5)
        engine.dispose()
        assert result.drifts == [] and result.checked_skus == 2
