"""Keys, roles, other customers' ids, bad bodies, body size, rate limits."""

from __future__ import annotations

import re

import msgspec
import pytest

from tests.harness import running_stack

pytestmark = pytest.mark.anyio


async def _key(stack, role: str, customer_id: str | None = None) -> str:
    body = {"role": role, "name": f"{role} key"}
    if customer_id:
        body["customer_id"] = customer_id
    r = await stack.post("/v1/api-keys", body)
    assert r.status_code == 201, r.text
    assert r.json()["key"].startswith("onh_")
    return r.json()["key"]


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _world(stack):
    assert (await stack.put("/v1/skus/SEC", {"name": "x", "case_pack": 6})).status_code == 200
    await stack.post("/v1/inventory/receipts", {"reference": "S1", "lines": [{"sku": "SEC", "quantity": 100}]})
    a = (await stack.post("/v1/customers", {"name": "Alpha", "profiles": [{"channel": "wholesale"}]})).json()
    b = (await stack.post("/v1/customers", {"name": "Beta", "profiles": [{"channel": "wholesale"}]})).json()
    key_a, key_b = await _key(stack, "wholesale", a["id"]), await _key(stack, "wholesale", b["id"])
    order_b = await stack.client.post("/v1/orders", json={"channel": "wholesale", "po_number": "B-PO-1",
                                                          "lines": [{"sku": "SEC", "quantity": 2}]},
                                      headers=_auth(key_b))
    assert order_b.status_code == 201, order_b.text
    return a, b, key_a, key_b, order_b.json()


async def test_another_customers_ids_are_404_everywhere_and_lists_leak_nothing(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        a, b, key_a, key_b, order_b = await _world(stack)
        c = stack.client
        h = _auth(key_a)
        # the wholesale order belongs to its key's customer even without naming it
        assert order_b["customer_id"] == b["id"]
        oid = order_b["id"]
        for path in (f"/v1/orders/{oid}", f"/v1/customers/{b['id']}"):
            r = await c.get(path, headers=h)
            assert r.status_code == 404 and r.json()["type"] == "/problems/not-found", path
        # same answer as an id that does not exist
        assert (await c.get("/v1/orders/ord_doesnotexist", headers=h)).json() == \
            (await c.get(f"/v1/orders/{oid}", headers=h)).json()
        # in the body: placing an order for the other customer or its profile
        r = await c.post("/v1/orders", headers=h, json={"channel": "wholesale", "customer_id": b["id"],
                                                        "lines": [{"sku": "SEC", "quantity": 1}]})
        assert r.status_code == 404
        r = await c.post("/v1/orders", headers=h, json={"channel": "wholesale", "profile_id": b["profiles"][0]["id"],
                                                        "lines": [{"sku": "SEC", "quantity": 1}]})
        assert r.status_code == 404
        # staff-only routes are 403 for a wholesale key, whatever the id
        for method, path, body in (
            ("POST", f"/v1/orders/{oid}/cancel", {}),
            ("POST", f"/v1/orders/{oid}/shipments", {"lines": [{"sku": "SEC", "quantity": 1}], "method": "parcel"}),
            ("GET", f"/v1/orders/{oid}/pick-list", None),
            ("GET", f"/v1/orders/{oid}/packing-slip.pdf", None),
            ("POST", "/v1/returns", {"order_id": oid, "lines": [{"sku": "SEC", "quantity": 1, "restock": True}]}),
            ("POST", "/v1/api-keys", {"role": "admin"}),
            ("PUT", "/v1/skus/SEC", {"dtc_reserve": 0}),
            ("GET", "/v1/customers", None),
        ):
            r = await c.request(method, path, headers=h, json=body)
            assert r.status_code == 403 and r.json()["type"] == "/problems/forbidden", (method, path, r.text)
        # lists leak nothing: own orders only, whatever the filter
        mine = await c.post("/v1/orders", headers=h, json={"channel": "wholesale", "lines": [{"sku": "SEC", "quantity": 1}]})
        assert mine.status_code == 201
        for params in ({}, {"customer_id": b["id"]}, {"po_number": "B-PO-1"}, {"sku": "SEC"}):
            listing = (await c.get("/v1/orders", headers=h, params=params)).json()
            assert all(o["customer_id"] == a["id"] for o in listing["items"]), params
            assert oid not in {o["id"] for o in listing["items"]}
        # inventory as available_to_wholesale only
        inv = (await c.get("/v1/inventory/SEC", headers=h)).json()
        assert set(inv) == {"view", "sku", "name", "case_pack", "available_to_wholesale"}


async def test_missing_malformed_unknown_and_revoked_keys_get_the_same_401(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        key = await _key(stack, "operator")
        listed = (await stack.get("/v1/api-keys")).json()["items"]
        key_id = next(k["id"] for k in listed if key.startswith(f"onh_{k['id']}_"))
        assert "key" not in listed[0] and "hash" not in listed[0]
        c = stack.client
        assert (await c.get("/v1/inventory/X", headers=_auth(key))).status_code == 404  # works
        assert (await stack.client.delete(f"/v1/api-keys/{key_id}",
                                          headers={"Authorization": f"Bearer {stack.settings.admin_key}"})).status_code == 204
        tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
        bodies = []
        for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"},
                        {"Authorization": "Bearer not-a-key"}, {"Authorization": "Bearer onh_key_nope_" + "a" * 32},
                        _auth(tampered), _auth(key)):
            r = await c.get("/v1/inventory/X", headers=headers)
            assert r.status_code == 401
            bodies.append(r.content)
        assert len(set(bodies)) == 1
        # the admin key from the environment cannot be revoked through the API
        r = await stack.client.delete("/v1/api-keys/admin-env",
                                      headers={"Authorization": f"Bearer {stack.settings.admin_key}"})
        assert r.status_code == 403


async def test_bad_bodies_are_rejected_and_change_nothing(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        a, b, key_a, key_b, _ = await _world(stack)
        before = (await stack.get("/v1/inventory/SEC")).json()
        outbox = stack.redis.xlen(stack.keys.outbox)
        cases = [
            {"channel": "wholesale", "lines": [{"sku": "SEC", "quantity": 1}], "status": "shipped"},
            {"channel": "wholesale", "lines": [{"sku": "SEC", "quantity": 1, "reserved": 1}]},
            {"channel": "wholesale", "lines": [{"sku": "SEC", "quantity": 0}]},
            {"channel": "wholesale", "lines": [{"sku": "SEC", "quantity": 10**9 + 1}]},
            {"channel": "wholesale", "lines": [{"sku": "SEC", "quantity": 1.5}]},
            {"channel": "wholesale", "lines": [{"sku": "SEC", "quantity": "1"}]},
            {"channel": "wholesale", "lines": [{"sku": ".SEC", "quantity": 1}]},
            {"channel": "wholesale", "lines": [{"sku": "ACM/8900-400", "quantity": 1}]},
            {"channel": "retail", "lines": [{"sku": "SEC", "quantity": 1}]},
            {"channel": "wholesale", "lines": []},
            {"channel": "wholesale", "lines": [{"sku": "SEC", "quantity": 1}] * 501},
            {"channel": "wholesale", "backorder_policy": "sometimes", "lines": [{"sku": "SEC", "quantity": 1}]},
            # PostgreSQL cannot store NUL in text: refused here, not dead-lettered later
            {"channel": "wholesale", "po_number": "PO\u0000-1", "lines": [{"sku": "SEC", "quantity": 1}]},
        ]
        for body in cases:
            r = await stack.post("/v1/orders", body)
            assert r.status_code == 400, (body, r.text)
            problem = r.json()
            assert problem["type"] == "/problems/validation" and problem["errors"]
            assert r.headers["content-type"].startswith("application/problem+json")
        r = await stack.client.post("/v1/orders", content=b'{"channel": "wholesale", "lines": [',
                                    headers={"Authorization": f"Bearer {stack.settings.admin_key}",
                                             "content-type": "application/json"})
        assert r.status_code == 400
        r = await stack.post("/v1/orders", {"channel": "wholesale", "lines": [{"sku": "NOPE", "quantity": 1}]})
        assert r.status_code == 404
        assert (await stack.get("/v1/inventory/SEC")).json() == before
        assert stack.redis.xlen(stack.keys.outbox) == outbox


async def test_oversize_bodies_get_413_before_parsing(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        big = b'{"channel": "dtc", "lines": [' + b'{"sku": "X", "quantity": 1},' * 40000 + b'{"sku": "X", "quantity": 1}]}'
        assert len(big) > 1024 * 1024
        r = await stack.client.post("/v1/orders", content=big, headers={
            "Authorization": f"Bearer {stack.settings.admin_key}", "content-type": "application/json"})
        assert r.status_code == 413 and r.json()["type"] == "/problems/payload-too-large"
        # not parsed: even garbage of that size is 413, not 400
        r = await stack.client.post("/v1/orders", content=b"x" * (1024 * 1024 + 1), headers={
            "Authorization": f"Bearer {stack.settings.admin_key}", "content-type": "application/json"})
        assert r.status_code == 413


async def test_wholesale_keys_are_rate_limited_per_key_with_headers(redis_url, database_url):
    async with running_stack(redis_url, database_url, rate_limit_wholesale=5.0) as stack:
        a, b, key_a, key_b, _ = await _world(stack)
        codes = []
        for _ in range(12):
            r = await stack.client.get("/v1/inventory/SEC", headers=_auth(key_a))
            codes.append(r.status_code)
            if r.status_code == 200:
                assert r.headers["ratelimit-limit"] == "5"
        assert codes.count(429) >= 5 and codes[0] == 200
        r = await stack.client.get("/v1/inventory/SEC", headers=_auth(key_a))
        assert r.status_code == 429 and r.json()["type"] == "/problems/rate-limited"
        assert int(r.headers["retry-after"]) >= 1 and r.headers["ratelimit-remaining"] == "0"
        # per key: the other customer's key is not affected; staff keys are unlimited by default
        assert (await stack.client.get("/v1/inventory/SEC", headers=_auth(key_b))).status_code == 200
        for _ in range(20):
            assert (await stack.get("/v1/inventory/SEC")).status_code == 200


async def test_metrics_need_the_admin_key_or_the_token(redis_url, database_url):
    async with running_stack(redis_url, database_url, metrics_token="scrape-token") as stack:
        await stack.post("/v1/orders", {"channel": "dtc", "lines": [{"sku": "NOPE", "quantity": 1}]})
        assert (await stack.client.get("/metrics")).status_code == 401
        op = await _key(stack, "operator")
        assert (await stack.client.get("/metrics", headers=_auth(op))).status_code == 403
        for headers in ({"Authorization": "Bearer scrape-token"}, _auth(stack.settings.admin_key)):
            r = await stack.client.get("/metrics", headers=headers)
            assert r.status_code == 200
            text = r.text
            for name in ("onhand_http_requests_total", "onhand_http_request_duration_seconds",
                         "onhand_exception_units", "onhand_outbox_backlog", "onhand_outbox_oldest_age_seconds",
                         "onhand_dead_letters"):
                assert name in text, name


async def test_every_route_but_the_public_ones_refuses_a_request_without_a_key(redis_url, database_url):
    """Authentication lives in one place, the API's middleware (api/middleware.py):
    routes open to every role carry no guard of their own, so a route not
    marked public must still refuse a request without a key, whatever its method."""
    from api.app import create_app

    app = create_app()
    routes = [(path, method, handler) for path, methods in app.route_handler_method_map.items()
              for method, handler in methods.items() if method not in ("OPTIONS", "HEAD")]
    private = [(path, method) for path, method, handler in routes
               if not (handler.opt.get("public") or handler.opt.get("session_auth") or path.startswith("/schema"))]
    assert len(private) > 40 and ("/v1/orders", "POST") in private
    async with running_stack(redis_url, database_url, workers=False) as stack:
        for path, method in private:
            url = re.sub(r"\{[^}]+\}", "x1", path)
            r = await stack.client.request(method, url, content=b"{}", headers={"content-type": "application/json"})
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
