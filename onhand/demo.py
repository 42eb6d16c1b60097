"""`onhand demo`: a small merchant and the Tuesday scenario, over the HTTP API
of a running onhand (`onhand serve`).

At 2 PM a retail buyer orders 500 of the bestseller; there are 600. By 5 PM
the Shopify store has sold 150. onhand keeps one pool: the wholesale order
holds its 500, the first 100 store sales are reserved, the other 50 become
exception units for staff, and the wholesale order ships in two shipments.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

import httpx

from onhand.settings import Settings


def _say(text: str) -> None:
    print(text, flush=True)


def _check(r: httpx.Response, *expected: int) -> dict:
    if r.status_code not in expected:
        raise SystemExit(f"demo: {r.request.method} {r.request.url.path} answered {r.status_code}: {r.text}")
    return r.json() if r.headers.get("content-type", "").endswith("json") else {}


def _admin_key(settings: Settings, given: str | None) -> str:
    key = given or settings.admin_key or os.environ.get("ONHAND_ADMIN_KEY")
    if key:
        return key
    # No key given: issue one through the servers a running `serve` recorded.
    from api.auth import issue_key
    from engine.store import Store
    from onhand.servers import servers
    from onhand.redis_clients import async_client

    async def create(url: str) -> str:
        redis = async_client(url, pool_size=4)
        try:
            store = Store(redis, settings.merchant)
            await store.start()
            _, key = await issue_key(store, "admin", None, "onhand demo", int(time.time() * 1000))
            return key
        finally:
            await redis.aclose()

    with servers(settings, embedded_ok=False) as resolved:
        return asyncio.run(create(resolved.redis_url))


def run_demo(settings: Settings, *, url: str, key: str | None) -> int:
    try:
        key = _admin_key(settings, key)
    except RuntimeError as exc:
        print(f"demo: {exc}. Start `onhand serve` first (or pass --url and --key).", file=sys.stderr)
        return 2
    run = uuid.uuid4().hex[:6]
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
        try:
            api.get("/healthz")
        except httpx.HTTPError:
            print(f"demo: no onhand at {url}. Start `onhand serve` first.", file=sys.stderr)
            return 2
        _say(f"onhand demo (run {run}) against {url}")
        _say("1/6 the catalogue: three SKUs, 600 units of the bestseller")
        for sku, name, pack in (("TEE-BEST", "Bestseller tee", 12), ("MUG-CLASSIC", "Classic mug", 6),
                                ("CAP-LOGO", "Logo cap", 24)):
            _check(api.put(f"/v1/skus/{sku}", json={"name": name, "case_pack": pack}), 200)
        _check(api.post("/v1/inventory/receipts", json={"reference": f"DEMO-ASN-{run}", "lines": [
            {"sku": "TEE-BEST", "quantity": 600}, {"sku": "MUG-CLASSIC", "quantity": 120},
            {"sku": "CAP-LOGO", "quantity": 240}]}), 201)

        _say("2/6 a company with two profiles: wholesale on Net 30, and DTC")
        customer = _check(api.post("/v1/customers", json={
            "name": "Corner Boutique Co.", "email": "buyer@cornerboutique.example", "profiles": [
                {"channel": "wholesale", "payment_terms": "net_30", "backorder_policy": "backorder",
                 "ship_to": {"name": "Receiving dock", "company": "Corner Boutique Co.",
                             "address1": "12 Market Street", "city": "Springfield", "zip": "12345",
                             "country_code": "US"}},
                {"channel": "dtc", "payment_terms": "prepaid"}]}), 201)

        _say("3/6 2 PM: the retail buyer orders 500 tees, PO number PO-2PM-500")
        po = f"PO-2PM-500-{run}"
        wholesale = _check(api.post("/v1/orders", headers={"Idempotency-Key": f"demo-{run}-wholesale"}, json={
            "channel": "wholesale", "customer_id": customer["id"], "po_number": po,
            "lines": [{"sku": "TEE-BEST", "quantity": 500, "unit_price": "8.40"}]}), 201)
        inv = _check(api.get("/v1/inventory/TEE-BEST"), 200)
        _say(f"    reserved {wholesale['lines'][0]['reserved']}; available now {inv['available']}")

        _say("4/6 by 5 PM the store sold 150 tees (sales already made: policy accept)")
        reserved = exception = 0
        for i in range(150):
            order = _check(api.post("/v1/orders", headers={"Idempotency-Key": f"demo-{run}-dtc-{i}"}, json={
                "channel": "dtc", "backorder_policy": "accept",
                "lines": [{"sku": "TEE-BEST", "quantity": 1, "unit_price": "19.00"}]}), 201)
            reserved += order["lines"][0]["reserved"]
            exception += order["lines"][0]["exception"]
        _say(f"    {reserved} reserved, {exception} exception units flagged for staff (no unit reserved twice)")

        _say("5/6 the PO search finds the wholesale order")
        found = _check(api.get("/v1/orders", params={"po_number": po.lower()}), 200)
        _say(f"    {po.lower()} -> order #{found['items'][0]['number']} ({found['items'][0]['id']})")

        _say("6/6 it ships in two shipments, each tracked separately")
        _check(api.post(f"/v1/orders/{wholesale['id']}/shipments", json={
            "lines": [{"sku": "TEE-BEST", "quantity": 300}], "method": "freight", "carrier": "XPO Logistics",
            "tracking_number": f"PRO-{run}-1", "pallets": 2}), 201)
        _check(api.post(f"/v1/orders/{wholesale['id']}/shipments", json={
            "lines": [{"sku": "TEE-BEST", "quantity": 200}], "method": "parcel", "carrier": "UPS",
            "tracking_number": f"1Z{run}2", "packages": 17}), 201)
        order = _check(api.get(f"/v1/orders/{wholesale['id']}"), 200)
        inv = _check(api.get("/v1/inventory/TEE-BEST"), 200)
    _say("")
    _say(f"Done. Wholesale order #{order['number']}: {order['status']}, "
         f"{len(order['shipments'])} shipments ({', '.join(s['tracking_number'] for s in order['shipments'])}).")
    _say(f"TEE-BEST: on hand {inv['on_hand']}, reserved {inv['reserved']}, available {inv['available']}, "
         f"exception units {inv['exception']}.")
    _say(f"Packing slip: {url}/v1/orders/{order['id']}/packing-slip.pdf   API docs: {url}/schema")
    return 0
