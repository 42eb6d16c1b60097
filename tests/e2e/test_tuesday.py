"""The Tuesday scenario and the classic backorder case, over HTTP."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from tests.harness import running_stack

pytestmark = pytest.mark.anyio


async def _sku(stack, sku: str, **body) -> None:
    r = await stack.put(f"/v1/skus/{sku}", body)
    assert r.status_code == 200, r.text


async def _receive(stack, sku: str, qty: int, ref: str):
    r = await stack.post("/v1/inventory/receipts", {"reference": ref, "lines": [{"sku": sku, "quantity": qty}]})
    assert r.status_code == 201, r.text
    return r.json()


async def _customer(stack, name: str, terms: str = "net_30") -> dict:
    r = await stack.post("/v1/customers", {"name": name, "profiles": [
        {"channel": "wholesale", "payment_terms": terms,
         "ship_to": {"name": "Receiving", "company": name, "address1": "1 Dock St", "city": "Springfield",
                     "zip": "12345", "country_code": "US"}},
        {"channel": "dtc", "payment_terms": "prepaid"}]})
    assert r.status_code == 201, r.text
    return r.json()


async def _read(stack, path: str, **params) -> dict:
    r = await stack.get(path, params=params or None)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


async def test_tuesday(redis_url, database_url, broker_url):
    async with running_stack(redis_url, database_url, broker_url=broker_url) as stack:
        await tuesday(stack)


async def tuesday(stack) -> dict:
    """The Tuesday scenario on a running stack, as the stack's merchant
    (tests/cluster runs it for 20 merchants at once). Returns the wholesale
    order and its customer."""
    # Given 600 units of the bestseller
    await _sku(stack, "TEE-BEST", name="Bestseller tee", case_pack=12)
    await _receive(stack, "TEE-BEST", 600, "ASN-600")
    buyer = await _customer(stack, "Corner Boutique")

    # When a retail buyer orders 500 with a PO number at 2 PM
    r = await stack.post("/v1/orders", {"channel": "wholesale", "customer_id": buyer["id"],
                                        "po_number": "PO-2PM-500",
                                        "lines": [{"sku": "TEE-BEST", "quantity": 500, "unit_price": "8.40"}]})
    assert r.status_code == 201, r.text
    wholesale = r.json()
    assert wholesale["lines"][0]["reserved"] == 500
    assert wholesale["payment_terms"] == "net_30"
    inv = await _read(stack, "/v1/inventory/TEE-BEST")
    assert inv["available"] == 100

    # and the Shopify store sells 150 by 5 PM (sales already made: accept)
    outcomes = []
    for i in range(150):
        r = await stack.post("/v1/orders", {"channel": "dtc", "backorder_policy": "accept",
                                            "lines": [{"sku": "TEE-BEST", "quantity": 1}]})
        assert r.status_code == 201, r.text
        outcomes.append(r.json()["lines"][0])
    # Then exactly 100 are reserved and 50 are exception units
    assert sum(line["reserved"] for line in outcomes) == 100
    assert sum(line["exception"] for line in outcomes) == 50
    inv = await _read(stack, "/v1/inventory/TEE-BEST")
    assert (inv["available"], inv["reserved"], inv["exception"]) == (0, 600, 50)
    assert inv["reserved_by_channel"] == {"dtc": 100, "wholesale": 500}

    # The PO search finds the wholesale order (exact, case-insensitive), right away
    found = await _read(stack, "/v1/orders", po_number="po-2pm-500")
    assert [o["id"] for o in found["items"]] == [wholesale["id"]]

    # It ships in two shipments, each tracked separately
    r1 = await stack.post(f"/v1/orders/{wholesale['id']}/shipments", {
        "lines": [{"sku": "TEE-BEST", "quantity": 300}], "method": "freight", "carrier": "XPO",
        "tracking_number": "PRO-300", "pallets": 2})
    assert r1.status_code == 201, r1.text
    r2 = await stack.post(f"/v1/orders/{wholesale['id']}/shipments", {
        "lines": [{"sku": "TEE-BEST", "quantity": 200}], "method": "parcel", "carrier": "UPS",
        "tracking_number": "1Z200", "packages": 17})
    assert r2.status_code == 201, r2.text
    order = await _read(stack, f"/v1/orders/{wholesale['id']}")
    assert order["status"] == "shipped"
    assert [(s["method"], s["tracking_number"], s["lines"][0]["quantity"]) for s in order["shipments"]] == [
        ("freight", "PRO-300", 300), ("parcel", "1Z200", 200)]

    # Its packing slip shows the PO number
    pdf = await stack.get(f"/v1/orders/{wholesale['id']}/packing-slip.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "PO-2PM-500" in text and "Corner Boutique" in text and str(order["number"]) in text

    # And PostgreSQL converges on the same state
    await stack.drained()
    found = await _read(stack, "/v1/orders", po_number="PO-2PM-500")
    assert found["items"][0]["status"] == "shipped"
    return {"order": wholesale, "customer": buyer}


async def test_classic_backorder(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        await _sku(stack, "MUG", name="Mug", case_pack=6)
        await _receive(stack, "MUG", 300, "ASN-1")
        buyer = await _customer(stack, "Cafe Chain")
        # 500 ordered, 300 on hand: 300 reserved, 200 backordered
        r = await stack.post("/v1/orders", {"channel": "wholesale", "customer_id": buyer["id"],
                                            "backorder_policy": "backorder",
                                            "lines": [{"sku": "MUG", "quantity": 500}]})
        order = r.json()
        assert (order["lines"][0]["reserved"], order["lines"][0]["backordered"]) == (300, 200)
        # a pick list in cases and eaches for what is reserved
        pick = (await stack.get(f"/v1/orders/{order['id']}/pick-list")).json()
        assert pick["lines"][0] | {} == {"sku": "MUG", "name": "Mug", "quantity": 300, "case_pack": 6,
                                        "cases": 50, "eaches": 0}
        # 300 ship now
        r = await stack.post(f"/v1/orders/{order['id']}/shipments",
                             {"lines": [{"sku": "MUG", "quantity": 300}], "method": "parcel"})
        assert r.status_code == 201
        # a later order waits behind it
        later = (await stack.post("/v1/orders", {"channel": "wholesale", "customer_id": buyer["id"],
                                                 "lines": [{"sku": "MUG", "quantity": 10}]})).json()
        # a receipt of 200 fills the older backorder first
        receipt = await _receive(stack, "MUG", 200, "ASN-2")
        assert receipt["fills"] == [{"sku": "MUG", "order_id": order["id"], "units": 200}]
        order = (await stack.get(f"/v1/orders/{order['id']}")).json()
        assert (order["lines"][0]["reserved"], order["lines"][0]["backordered"]) == (200, 0)
        later = (await stack.get(f"/v1/orders/{later['id']}")).json()
        assert later["lines"][0]["backordered"] == 10
        # and the rest ships
        r = await stack.post(f"/v1/orders/{order['id']}/shipments",
                             {"lines": [{"sku": "MUG", "quantity": 200}], "method": "parcel"})
        assert r.status_code == 201
        order = (await stack.get(f"/v1/orders/{order['id']}")).json()
        assert order["status"] == "shipped" and order["lines"][0]["shipped"] == 500
        inv = (await stack.get("/v1/inventory/MUG")).json()
        assert (inv["on_hand"], inv["reserved"], inv["backordered"]) == (0, 0, 10)
