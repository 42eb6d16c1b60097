"""Outbound webhooks end to end: real HTTP both ways, real workers, a local
receiver that verifies every signature with ``standardwebhooks``."""

from __future__ import annotations

import asyncio

import pytest

from tests.harness import running_stack
from tests.notify_helpers import FAST_RETRIES, eventually, subscribe, wholesale_customer
from tests.receiver import Receiver

pytestmark = pytest.mark.anyio


async def _stock(stack, sku: str, qty: int, ref: str) -> dict:
    r = await stack.post("/v1/inventory/receipts", {"reference": ref, "lines": [{"sku": sku, "quantity": qty}]})
    assert r.status_code == 201, r.text
    return r.json()


async def test_backorder_fill_and_two_shipments_reach_the_customer_once_each(redis_url, database_url, broker_url):
    async with running_stack(redis_url, database_url, broker_url=broker_url, **FAST_RETRIES) as stack:
        # Given a wholesale customer whose system subscribed with its own key
        assert (await stack.put("/v1/skus/TEE", {"name": "Tee", "case_pack": 12})).status_code == 200
        await _stock(stack, "TEE", 60, "ASN-1")
        customer, key = await wholesale_customer(stack, "Corner")
        receiver = Receiver().start()
        endpoint = await subscribe(stack, receiver.url, headers=key)
        assert endpoint["secret"].startswith("whsec_") and endpoint["customer_id"] == customer["id"]
        receiver.secret = endpoint["secret"]

        # When it orders 100 with 60 in stock (40 backordered), a receipt fills
        # the backorder, and the order ships in two shipments
        r = await stack.client.post("/v1/orders", headers=key, json={
            "channel": "wholesale", "po_number": "PO-77", "lines": [{"sku": "TEE", "quantity": 100}]})
        assert r.status_code == 201, r.text
        order = r.json()
        await _stock(stack, "TEE", 40, "ASN-2")
        for qty, tracking in ((70, "1Z-FIRST"), (30, "1Z-SECOND")):
            r = await stack.post(f"/v1/orders/{order['id']}/shipments", {
                "lines": [{"sku": "TEE", "quantity": qty}], "method": "parcel", "carrier": "UPS",
                "tracking_number": tracking})
            assert r.status_code == 201, r.text

        # Then the receiver gets order.created, order.backorder_filled and two
        # order.shipped, each followed by its invoice.created, each signed, in
        # that order, with the PO number
        await eventually(lambda: len(receiver.unique()) >= 6, what="six events")
        everything = sorted(receiver.unique().values(), key=lambda e: e.at)
        assert [e.type for e in everything] == ["order.created", "order.backorder_filled", "order.shipped",
                                                "invoice.created", "order.shipped", "invoice.created"]
        invoices = [e for e in everything if e.type == "invoice.created"]
        assert [e.data["invoice"]["shipment_id"] for e in invoices] == [
            e.data["shipment"]["id"] for e in everything if e.type == "order.shipped"]
        assert all(e.data["invoice"]["po_number"] == "PO-77" for e in invoices)
        events = [e for e in everything if e.type != "invoice.created"]
        assert all(e.data["order"]["po_number"] == "PO-77" for e in events)
        created = events[0].data["order"]["lines"][0]
        assert (created["reserved"], created["backordered"]) == (60, 40)
        assert events[1].data["filled"] == [{"sku": "TEE", "units": 40}]
        assert [e.data["shipment"]["tracking_number"] for e in events[2:]] == ["1Z-FIRST", "1Z-SECOND"]
        assert [e.data["shipment"]["lines"] for e in events[2:]] == [
            [{"sku": "TEE", "quantity": 70}], [{"sku": "TEE", "quantity": 30}]]
        assert receiver.forged == 0

        # and the delivery log says so (once the worker has written the outcomes down)
        logs = []

        async def read_log() -> None:
            r = await stack.client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=key)
            assert r.status_code == 200, r.text
            logs.append(r.json())

        for _ in range(300):
            await read_log()
            if {d["status"] for d in logs[-1]["items"]} == {"delivered"}:
                break
            await asyncio.sleep(0.1)
        log = logs[-1]
        assert log["total"] == 6
        assert {d["status"] for d in log["items"]} == {"delivered"}
        assert all(d["attempts"] >= 1 and d["last_status_code"] == 200 and d["last_latency_ms"] is not None
                   for d in log["items"])
        receiver.stop()
