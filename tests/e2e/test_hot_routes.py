"""The order path's routes served in front of Litestar (api/hot.py) answer as
Litestar's routes do: every request here goes out twice, once as clients
send it (the hot routes take it) and once with a trailing slash (which they
leave to Litestar's router and handlers), and the two answers must match:
status, problem bodies, headers, replays of the same Idempotency-Key, the
rate limit shared by both, the webhook's signature check and dedupe."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import msgspec

import pytest

from tests.harness import ADMIN, running_stack

pytestmark = pytest.mark.anyio

SECRET = "hot-routes-secret"
#: Order fields that differ between two orders made alike.
_OWN = ("id", "number", "created_at", "updated_at")


def _same_order(a: dict, b: dict) -> None:
    assert {k: v for k, v in a.items() if k not in _OWN} == {k: v for k, v in b.items() if k not in _OWN}


def _headers(r) -> dict:
    """What an answer says besides its body: the server's date and name
    aside, and the rate-limit counts only by name (one request later)."""
    return {k: (v if k not in ("ratelimit-remaining", "ratelimit-reset") else "n") for k, v in r.headers.items()
            if k not in ("date", "server", "content-length")}


async def _both(stack, method: str, path: str, *, content=None, headers=None, same_body: bool = True):
    """Sends the request to the hot route and to Litestar's; returns both answers."""
    served = dict(stack.app.asgi_handler.served)
    hot = await stack.client.request(method, path, content=content, headers=headers)
    assert sum(stack.app.asgi_handler.served.values()) == sum(served.values()) + 1, "not served by the hot route"
    served = dict(stack.app.asgi_handler.served)
    litestar = await stack.client.request(method, path + "/", content=content, headers=headers)
    assert stack.app.asgi_handler.served == served, "served by the hot route"
    assert hot.status_code == litestar.status_code, (path, hot.text, litestar.text)
    assert _headers(hot) == _headers(litestar), path
    if same_body:
        assert hot.content == litestar.content, (path, hot.text, litestar.text)
    return hot, litestar


async def test_orders_and_their_refusals_answer_alike_both_ways(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False, rate_limit_wholesale=1000.0) as stack:
        assert (await stack.put("/v1/skus/HOT", {"name": "hot"})).status_code == 200
        r = await stack.post("/v1/inventory/receipts", {"reference": "R-HOT", "lines": [{"sku": "HOT", "quantity": 50}]})
        assert r.status_code == 201
        customer = (await stack.post("/v1/customers", {"name": "Acme", "profiles": [
            {"channel": "wholesale", "payment_terms": "net_30", "backorder_policy": "backorder"}]})).json()
        key = (await stack.post("/v1/api-keys", {"role": "wholesale", "customer_id": customer["id"]})).json()["key"]
        wholesale = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
        admin = {**ADMIN, "content-type": "application/json"}
        order = json.dumps({"channel": "wholesale", "po_number": "PO-1", "lines": [{"sku": "HOT", "quantity": 2}]})

        # two new orders: alike but for their own id, number and times
        hot, litestar = await _both(stack, "POST", "/v1/orders", content=order, headers=wholesale, same_body=False)
        assert hot.status_code == 201 and hot.headers["ratelimit-limit"] == "1000"
        _same_order(hot.json(), litestar.json())
        # one Idempotency-Key: the second way replays the first way's order
        hot, litestar = await _both(stack, "POST", "/v1/orders", content=order,
                                    headers={**wholesale, "Idempotency-Key": "k-1"}, same_body=False)
        assert hot.status_code == 201 and hot.json() == litestar.json()
        hot, litestar = await _both(stack, "POST", "/v1/orders", content=order.replace("2}", "3}"),
                                    headers={**wholesale, "Idempotency-Key": "k-1"})
        assert hot.json()["type"] == "/problems/idempotency-key-reused"

        refusals = {
            "malformed JSON": ("{bad", wholesale),
            "a string for a number": ('{"channel":"wholesale","lines":[{"sku":"HOT","quantity":"2"}]}', wholesale),
            "an unknown field, a missing one": ('{"channel":"wholesale","colour":"red"}', wholesale),
            "no key": (order, {"content-type": "application/json"}),
            "a revoked-looking key": (order, {"Authorization": "Bearer onh_key_nope_" + "x" * 32}),
            "DTC with a wholesale key": (order.replace('"wholesale"', '"dtc"'), wholesale),
            "another customer": (json.dumps({"channel": "wholesale", "customer_id": "cus_other",
                                             "lines": [{"sku": "HOT", "quantity": 1}]}), wholesale),
            "an unknown SKU": (json.dumps({"channel": "dtc", "lines": [{"sku": "NOPE", "quantity": 1}]}), admin),
            "not enough for all or nothing": (json.dumps({"channel": "dtc", "backorder_policy": "all_or_nothing",
                                                          "lines": [{"sku": "HOT", "quantity": 999}]}), admin),
            "two prices for one SKU": (json.dumps({"channel": "dtc", "lines": [
                {"sku": "HOT", "quantity": 1, "unit_price": "1.00"},
                {"sku": "HOT", "quantity": 1, "unit_price": "2.00"}]}), admin),
            "a malformed Idempotency-Key": (order, {**wholesale, "Idempotency-Key": "k" * 300}),
        }
        statuses = {}
        for name, (body, headers) in refusals.items():
            hot, _ = await _both(stack, "POST", "/v1/orders", content=body, headers=headers)
            statuses[name] = hot.status_code
            assert hot.headers["content-type"] == "application/problem+json", name
        assert statuses == {"malformed JSON": 400, "a string for a number": 400,
                            "an unknown field, a missing one": 400, "no key": 401, "a revoked-looking key": 401,
                            "DTC with a wholesale key": 403, "another customer": 404, "an unknown SKU": 404,
                            "not enough for all or nothing": 409, "two prices for one SKU": 400,
                            "a malformed Idempotency-Key": 400}
        # a body over 1 MiB, refused by its Content-Length before it is read
        big = b'{"channel":"dtc","notes":"' + b"x" * (1024 * 1024) + b'"}'
        hot, _ = await _both(stack, "POST", "/v1/orders", content=big, headers=admin)
        assert hot.status_code == 413

        # reads
        placed = (await stack.client.post("/v1/orders", content=order, headers=wholesale)).json()
        other_customer = (await stack.post("/v1/customers", {"name": "Other", "profiles": [
            {"channel": "wholesale"}]})).json()
        other_key = (await stack.post("/v1/api-keys", {"role": "wholesale",
                                                       "customer_id": other_customer["id"]})).json()["key"]
        for headers, status in ((ADMIN, 200), (wholesale, 200), ({"Authorization": f"Bearer {other_key}"}, 404),
                                ({}, 401)):
            hot, _ = await _both(stack, "GET", f"/v1/orders/{placed['id']}", headers=headers, same_body=False)
            assert hot.status_code == status
            if status == 200:  # the ratelimit headers aside (one request later)
                assert hot.json() == placed
        hot, _ = await _both(stack, "GET", "/v1/orders/ord_missing", headers=ADMIN)
        assert hot.status_code == 404
        for headers in (ADMIN, wholesale):
            hot, litestar = await _both(stack, "GET", "/v1/inventory/HOT", headers=headers, same_body=False)
            assert hot.status_code == 200 and hot.json() == litestar.json()
        assert "on_hand" in (await stack.get("/v1/inventory/HOT")).json()
        assert set((await stack.client.get("/v1/inventory/HOT", headers=wholesale)).json()) == {
            "view", "sku", "name", "case_pack", "available_to_wholesale"}
        hot, _ = await _both(stack, "GET", "/v1/inventory/NOPE", headers=ADMIN)
        assert hot.status_code == 404
        assert stack.app.asgi_handler.served.keys() == {"/v1/orders", "/v1/orders/{order_id:str}",
                                                        "/v1/inventory/{sku:str}"}
        # labelled as the middleware labels Litestar's routes: by their paths
        assert set(stack.app.asgi_handler.served) <= set(stack.app.route_handler_method_map)


async def test_the_rate_limit_is_one_count_for_both_ways(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False, rate_limit_wholesale=3.0) as stack:
        customer = (await stack.post("/v1/customers", {"name": "Acme", "profiles": [
            {"channel": "wholesale"}]})).json()
        key = (await stack.post("/v1/api-keys", {"role": "wholesale", "customer_id": customer["id"]})).json()["key"]
        auth = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
        bad = b'{"channel":"wholesale"}'  # refused before any Redis call: counted all the same
        answers = []
        for path in ("/v1/orders", "/v1/orders/", "/v1/orders", "/v1/orders/", "/v1/orders"):
            answers.append(await stack.client.post(path, content=bad, headers=auth))
        assert [a.status_code for a in answers] == [400, 400, 400, 429, 429]
        assert [a.headers.get("ratelimit-remaining") for a in answers[:3]] == ["2", "1", "0"]
        for refused in answers[3:]:
            assert refused.json()["type"] == "/problems/rate-limited" and int(refused.headers["retry-after"]) >= 1


async def test_webhooks_answer_alike_both_ways(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False, shopify_api_secret=SECRET) as stack:
        assert (await stack.put("/v1/skus/MUG", {"name": "mug"})).status_code == 200
        r = await stack.post("/v1/inventory/receipts", {"reference": "R-MUG", "lines": [{"sku": "MUG", "quantity": 9}]})
        assert r.status_code == 201

        def delivery(order_id: int, webhook_id: str, secret: str = SECRET) -> tuple[bytes, dict]:
            body = json.dumps({"id": order_id, "line_items": [
                {"id": 1, "sku": "MUG", "quantity": 1, "requires_shipping": True}]}).encode()
            sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
            return body, {"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": sig,
                          "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-Event-Id": webhook_id,
                          "content-type": "application/json"}

        body, headers = delivery(1001, "w-1")
        hot = await stack.client.post("/webhooks/shopify", content=body, headers=headers)
        assert hot.status_code == 200 and hot.json()["status"] == "accepted"
        again = await stack.client.post("/webhooks/shopify/", content=body, headers=headers)
        assert again.status_code == 200 and again.json() == {**hot.json(), "status": "duplicate"}
        body, headers = delivery(1002, "w-2")
        a = await stack.client.post("/webhooks/shopify/", content=body, headers=headers)
        b = await stack.client.post("/webhooks/shopify", content=body, headers=headers)
        assert (a.json()["status"], b.json()["status"]) == ("accepted", "duplicate")
        assert a.json()["order_id"] == b.json()["order_id"]
        body, headers = delivery(1003, "w-3", secret="wrong")
        await _both(stack, "POST", "/webhooks/shopify", content=body, headers=headers)
        inv = (await stack.get("/v1/inventory/MUG")).json()
        assert inv["reserved"] == 2  # each order once
        assert stack.app.asgi_handler.served["/webhooks/shopify"] == 3
        assert msgspec.json.decode((await stack.client.post(
            "/webhooks/shopify", content=body, headers=headers)).content)["type"] == "/problems/unauthorized"


async def test_sales_held_until_the_200_are_released_after_it_together(redis_url, database_url):
    """Deliveries answered in one turn of the event loop release their
    held-back sales in one pipeline: each sale's hold then ends a window after
    its 200, not at the 5-minute fallback, and the SKU's recheck comes sooner."""
    import asyncio
    import time

    async with running_stack(redis_url, database_url, workers=False, shopify_api_secret=SECRET) as stack:
        assert (await stack.put("/v1/skus/MUG", {"name": "mug"})).status_code == 200
        r = await stack.post("/v1/inventory/receipts", {"reference": "R-MUG", "lines": [{"sku": "MUG", "quantity": 99}]})
        assert r.status_code == 201
        prefix = stack.keys.prefix
        stack.redis.hset(f"{prefix}:sy:MUG", mapping={"p": 99, "o": 0, "w": 0, "g": 1})  # synced: sales are held
        far = int(time.time() * 1000) + 3_600_000
        stack.redis.zadd(f"{prefix}:sync:due", {"MUG": far})

        async def deliver(order_id: int):
            body = json.dumps({"id": order_id, "line_items": [
                {"id": 1, "sku": "MUG", "quantity": 1, "requires_shipping": True}]}).encode()
            sig = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
            return await stack.client.post("/webhooks/shopify", content=body, headers={
                "X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": sig,
                "X-Shopify-Webhook-Id": f"w-{order_id}", "X-Shopify-Event-Id": f"e-{order_id}"})

        start = int(time.time() * 1000)
        answers = await asyncio.gather(*(deliver(5000 + i) for i in range(30)))
        assert {a.status_code for a in answers} == {200}
        window = stack.settings.shopify_sale_ack_window_ms
        deadline = time.monotonic() + 5
        while True:
            held = stack.redis.zrange(f"{prefix}:syr:MUG", 0, -1, withscores=True)
            if len(held) == 30 and all(score <= int(time.time() * 1000) + window for _, score in held):
                break
            assert time.monotonic() < deadline, held  # still at the 5-minute fallback
            await asyncio.sleep(0.05)
        assert {m.decode() for m, _ in held} == {f"{5000 + i}:1" for i in range(30)}
        assert all(score >= start + window for _, score in held)
        assert stack.redis.zscore(f"{prefix}:sync:due", "MUG") < far
