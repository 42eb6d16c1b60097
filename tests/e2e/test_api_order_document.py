"""An order's own fields (PO, terms, currency, ship-to, notes, prices) read
back the same from Redis and, once drained, from PostgreSQL; the ones not
given read as null. (Only the fields given are kept with the order.)"""

from __future__ import annotations

import pytest

from tests.harness import running_stack

pytestmark = pytest.mark.anyio

SHIP_TO = {"name": "Receiving", "company": "Corner Shop", "address1": "1 Dock St", "city": "Springfield",
           "zip": "12345", "country_code": "US"}
FIELDS = ("customer_id", "profile_id", "po_number", "payment_terms", "currency", "ship_to", "notes", "source",
          "created_at")


async def test_order_fields_read_back_the_same_before_and_after_the_drain(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        # Given a wholesale customer with Net 30 and two SKUs in stock
        for sku in ("DOC-A", "DOC-B"):
            assert (await stack.put(f"/v1/skus/{sku}", {"name": sku})).status_code == 200
        r = await stack.post("/v1/inventory/receipts", {"reference": "DOC", "lines": [
            {"sku": "DOC-A", "quantity": 50}, {"sku": "DOC-B", "quantity": 50}]})
        assert r.status_code == 201
        r = await stack.post("/v1/customers", {"name": "Corner Shop", "profiles": [
            {"channel": "wholesale", "payment_terms": "net_30", "ship_to": SHIP_TO}]})
        assert r.status_code == 201, r.text
        customer = r.json()

        # When one order gives every optional field and another gives none
        full = await stack.post("/v1/orders", {
            "channel": "wholesale", "customer_id": customer["id"], "po_number": "PO-DOC-1", "currency": "USD",
            "notes": "dock 4", "lines": [{"sku": "DOC-A", "quantity": 3, "unit_price": "8.40"},
                                         {"sku": "DOC-B", "quantity": 2}]})
        bare = await stack.post("/v1/orders", {"channel": "dtc", "lines": [{"sku": "DOC-A", "quantity": 1}]})
        assert full.status_code == 201, full.text
        assert bare.status_code == 201, bare.text
        f, b = full.json(), bare.json()

        # Then the 201 carries them, and the absent ones are null
        assert f["po_number"] == "PO-DOC-1" and f["currency"] == "USD" and f["notes"] == "dock 4"
        assert f["customer_id"] == customer["id"] and f["profile_id"] == customer["profiles"][0]["id"]
        assert f["payment_terms"] == "net_30" and f["ship_to"]["address1"] == "1 Dock St"
        assert [l["unit_price"] for l in f["lines"]] == ["8.40", None]
        assert f["source"] == b["source"] == "api" and f["channel"] == "wholesale"
        assert all(b[k] is None for k in ("customer_id", "profile_id", "po_number", "payment_terms",
                                          "currency", "ship_to", "notes"))
        assert [l["unit_price"] for l in b["lines"]] == [None] and b["created_at"]

        # and reading them back, by id and from PostgreSQL's search, gives the same
        await stack.drained()
        for sent in (f, b):
            got = (await stack.get(f"/v1/orders/{sent['id']}")).json()
            assert {k: got[k] for k in FIELDS} == {k: sent[k] for k in FIELDS}
            assert got["lines"] == sent["lines"]
        found = (await stack.get("/v1/orders", params={"po_number": "PO-DOC-1"})).json()
        assert [o["id"] for o in found["items"]] == [f["id"]]
        assert {k: found["items"][0][k] for k in FIELDS} == {k: f[k] for k in FIELDS}
