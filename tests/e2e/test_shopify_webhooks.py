"""Every real Shopify payload in tests/fixtures/shopify, delivered signed over
HTTP by the emulator, handled as API.md's rules say (never a 500); and what
is refused: bad, missing or tampered signatures, another shop, bodies over
2 MiB - with Redis and PostgreSQL left exactly as they were."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx

from tests.e2e.test_shopify_support import (  # noqa: F401 - fixtures
    emulator,
    fixture_bytes,
    pg_count,
    shopify_stack,
)

REAL_CREATE = "orders_create__real_devstore_2025-01.json"
TEST_NOTIFICATION = "orders_create__shopify_test_notification_sample_2025-10.json"
REAL_CANCEL = "orders_cancelled__real_devstore_2025-01.json"
REFUND_OF_REAL_CANCEL = "refunds_create__derived_from_real_cancel_2025-01.json"
REFUND_DOCS_SAMPLE = "refunds_create__shopify_docs_sample_2026-07.json"
REFUND_REST_EXAMPLE = "refunds_create__shopify_docs_example_rest_refund.json"
UNINSTALLED = "app_uninstalled__shopify_docs_sample_2026-07.json"


def send(stack, topic: str, body: bytes | str, **options) -> dict:
    text = body.decode() if isinstance(body, bytes) else body
    outcome = stack.emu.client.send_webhook(topic, raw_body=text, **options)
    return outcome


def accepted(stack, topic: str, body: bytes | str) -> None:
    outcome = send(stack, topic, body)
    assert outcome["status_code"] == 200, outcome


def pending_actions(stack, shopify_order_id) -> int:
    return stack.redis.llen(f"{stack.keys.prefix}:shp:pend:{shopify_order_id}")


def as_create(cancel_payload: dict) -> str:
    """The orders/create a cancelled order had: same order and lines, not cancelled yet."""
    order = dict(cancel_payload)
    order.update(cancelled_at=None, cancel_reason=None, refunds=[], financial_status="paid")
    return json.dumps(order)


def test_real_orders_create_with_empty_skus_becomes_an_exception_order(emulator, redis_url, database_url):
    with shopify_stack(emulator, redis_url, database_url, workers=False) as stack:
        stack.sku("TEE", 10)
        accepted(stack, "orders/create", fixture_bytes(REAL_CREATE))
        order = stack.order("shp_6198432301356")
        assert order["source"] == "shopify" and order["shopify_order_id"] == "6198432301356"
        assert order["status"] == "exception" and order["currency"] == "HKD"
        assert [(l["sku"], l["quantity"], l["exception"], l["reserved"], l["exception_reason"])
                for l in order["lines"]] == [(None, 1, 1, 0, "missing_sku")] * 4
        assert [l["shopify_line_item_id"] for l in order["lines"]] == [
            "15514975502636", "15514975535404", "15514975568172", "15514975600940"]
        assert [l["unit_price"] for l in order["lines"]] == ["99.00", "100.00", "100.00", "100.00"]
        assert order["ship_to"]["country_code"] == "HK"
        inv = stack.inventory("TEE")
        assert (inv["available"], inv["reserved"], inv["exception"]) == (10, 0, 0)
        assert stack.api("GET", "/v1/inventory")["items"] == [inv]   # no SKU appeared for ""


def test_test_notification_reserves_nothing(emulator, redis_url, database_url):
    with shopify_stack(emulator, redis_url, database_url, workers=False) as stack:
        skus = ["711719510674", "799366664771", "14633376753"]
        for sku in skus:
            stack.sku(sku, 5)
        accepted(stack, "orders/create", fixture_bytes(TEST_NOTIFICATION))
        order = stack.order("shp_820982911946154508")
        assert [(l["sku"], l["reserved"], l["cancelled"], l["exception_reason"]) for l in order["lines"]] == [
            (sku, 0, 1, "test_order") for sku in skus]
        for sku in skus:
            inv = stack.inventory(sku)
            assert (inv["available"], inv["reserved"], inv["exception"]) == (5, 0, 0)


def test_cancel_of_an_unseen_order_is_kept_and_released_once_with_its_refund(emulator, redis_url, database_url):
    with shopify_stack(emulator, redis_url, database_url, workers=False) as stack:
        # the real payloads as they are (an empty SKU): kept, then applied
        accepted(stack, "orders/cancelled", fixture_bytes(REAL_CANCEL))
        assert pending_actions(stack, 6198821716268) == 1
        accepted(stack, "refunds/create", fixture_bytes(REFUND_OF_REAL_CANCEL))  # its refund: seen already
        assert pending_actions(stack, 6198821716268) == 1
        cancel = json.loads(fixture_bytes(REAL_CANCEL))
        accepted(stack, "orders/create", as_create(cancel))
        order = stack.order("shp_6198821716268")
        assert order["status"] == "cancelled"
        assert [(l["quantity"], l["cancelled"], l["exception"]) for l in order["lines"]] == [(1, 1, 0)]
        assert pending_actions(stack, 6198821716268) == 0

        # the same deliveries for an order whose SKU is stocked: released exactly once
        stack.sku("REAL-SKU", 4)
        cancel["id"] = 6198821716999
        for li in cancel["line_items"]:
            li["sku"] = "REAL-SKU"
        refund = json.loads(fixture_bytes(REFUND_OF_REAL_CANCEL))
        refund["order_id"] = 6198821716999
        refund["id"] = cancel["refunds"][0]["id"] = 982959849999
        for rl in refund["refund_line_items"] + cancel["refunds"][0]["refund_line_items"]:
            rl["line_item"]["sku"] = "REAL-SKU"
        accepted(stack, "refunds/create", json.dumps(refund))       # refund first, this time
        accepted(stack, "orders/cancelled", json.dumps(cancel))
        accepted(stack, "orders/create", as_create(cancel))
        inv = stack.inventory("REAL-SKU")
        assert (inv["available"], inv["reserved"]) == (4, 0)          # not 5
        assert stack.order("shp_6198821716999")["status"] == "cancelled"


def test_refunds_of_unseen_orders_are_kept_and_applied_when_the_order_comes(emulator, redis_url, database_url):
    with shopify_stack(emulator, redis_url, database_url, workers=False) as stack:
        stack.sku("IPOD2008BLACK", 3)
        stack.sku("IPOD2008GREEN", 3)
        accepted(stack, "refunds/create", fixture_bytes(REFUND_REST_EXAMPLE))   # legacy_restock
        accepted(stack, "refunds/create", fixture_bytes(REFUND_DOCS_SAMPLE))    # no_restock, 5 lines
        assert pending_actions(stack, 450789469) == 1
        assert pending_actions(stack, 820982911946154508) == 1
        stack.drained()
        assert pg_count(stack, "shopify_pending") == 2   # kept in PostgreSQL too, for a rebuild

        # the order of the REST example arrives: its two lines are reserved, then released
        order = {"id": 450789469, "name": "#1001", "currency": "USD", "test": False,
                 "line_items": [
                     {"id": 703073504, "sku": "IPOD2008BLACK", "quantity": 1, "price": "199.00",
                      "requires_shipping": True, "gift_card": False},
                     {"id": 466157049, "sku": "IPOD2008GREEN", "quantity": 1, "price": "199.00",
                      "requires_shipping": True, "gift_card": False}]}
        accepted(stack, "orders/create", json.dumps(order))
        placed = stack.order("shp_450789469")
        assert [(l["sku"], l["reserved"], l["cancelled"]) for l in placed["lines"]] == [
            ("IPOD2008BLACK", 0, 1), ("IPOD2008GREEN", 0, 1)]
        assert stack.inventory("IPOD2008BLACK")["available"] == 3
        assert pending_actions(stack, 450789469) == 0
        # the docs sample's order (the test notification's id) arrives: its refund
        # names line items the order does not have, and the order reserves nothing
        accepted(stack, "orders/create", fixture_bytes(TEST_NOTIFICATION))
        assert pending_actions(stack, 820982911946154508) == 0
        assert stack.order("shp_820982911946154508")["status"] == "cancelled"


def test_app_uninstalled_stops_syncing_and_keeps_everything(emulator, redis_url, database_url):
    with shopify_stack(emulator, redis_url, database_url) as stack:
        stack.emu.client.seed_products([{"sku": "MUG", "available": 0}])
        stack.sku("MUG", 10)
        stack.wait(lambda: stack.shop_available("MUG") == 10, message="the first push")
        accepted(stack, "app/uninstalled", fixture_bytes(UNINSTALLED))
        stack.api("POST", "/v1/inventory/receipts",
                  {"reference": "ASN-after", "lines": [{"sku": "MUG", "quantity": 5}]}, expect=201)
        time.sleep(0.5)   # the sync polls every 10 ms
        assert stack.shop_available("MUG") == 10          # nothing pushed any more
        assert stack.inventory("MUG")["available"] == 15  # onhand goes on
        assert stack.redis.sismember(stack.keys.dirty, "MUG")
        stack.drained()
        with stack.pg.connect() as conn:
            from sqlalchemy import text

            assert json.loads(conn.execute(text("SELECT value FROM state WHERE key = 'shopify_app'"))
                              .scalar())["installed"] is False


def test_every_fixture_answers_200_or_a_4xx_and_never_500(emulator, redis_url, database_url):
    topics = {REAL_CREATE: "orders/create", TEST_NOTIFICATION: "orders/create",
              REAL_CANCEL: "orders/cancelled", REFUND_OF_REAL_CANCEL: "refunds/create",
              REFUND_DOCS_SAMPLE: "refunds/create", REFUND_REST_EXAMPLE: "refunds/create",
              UNINSTALLED: "app/uninstalled"}
    with shopify_stack(emulator, redis_url, database_url, workers=False) as stack:
        for name, topic in topics.items():
            for _ in range(2):   # a repeat with new event ids is still fine
                assert send(stack, topic, fixture_bytes(name))["status_code"] == 200, name
        # the test notification sample is the same body for every orders/* topic
        for topic in ("orders/cancelled", "orders/updated", "orders/fulfilled"):
            assert send(stack, topic, fixture_bytes(TEST_NOTIFICATION))["status_code"] == 200
        # signed but not the resource the topic promises: 400, not 500
        assert send(stack, "refunds/create", "[1, 2]")["status_code"] == 400
        assert send(stack, "orders/create", "{not json")["status_code"] == 400


# ---------------------------------------------------------------- refusals


#: Keys of the workers' own machinery (locks, counters), not stored state.
_MACHINERY = (b":drain:slot:", b":shopify:sync:slot", b":shopify:fulfillment:lock", b":stats")


def _redis_state(stack) -> dict:
    """Every key of the merchant with its value; the outbox by its length and
    last id (a drainer's polling changes its consumer group's bookkeeping)."""
    state = {}
    for k in stack.redis.scan_iter(match=f"{stack.keys.prefix}:*", count=5000):
        if any(m in k for m in _MACHINERY):
            continue
        if k == stack.keys.outbox.encode():
            state[k] = (stack.redis.xlen(k), stack.redis.xinfo_stream(k)["last-generated-id"])
        else:
            state[k] = stack.redis.dump(k)
    return state


def _pg_state(stack) -> dict:
    return {t: pg_count(stack, t) for t in ("applied_events", "webhook_receipts", "orders",
                                             "shopify_pending", "inventory_ledger")}


def _sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_bad_missing_or_tampered_signatures_and_other_shops_are_401_and_store_nothing(
        emulator, redis_url, database_url):
    with shopify_stack(emulator, redis_url, database_url, workers=False,
                       shopify_api_secret="rotated-secret",
                       shopify_api_secret_previous=emulator.api_secret) as stack:
        stack.sku("MUG", 5)
        stack.drained()
        body = json.dumps({"id": 123456789, "line_items": [
            {"id": 1, "sku": "MUG", "quantity": 2, "requires_shipping": True}]})
        redis_before, pg_before = _redis_state(stack), _pg_state(stack)
        refusals = [
            send(stack, "orders/create", body, sign="bad"),
            send(stack, "orders/create", body, sign="none"),
            send(stack, "orders/create", body, shop_domain="another-shop.myshopify.com"),
        ]
        url = f"{stack.app.base_url}/webhooks/shopify"
        headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": emulator.shop_domain,
                   "X-Shopify-Event-Id": "e-1", "X-Shopify-Webhook-Id": "w-1",
                   "Content-Type": "application/json"}
        tampered = body.replace('"quantity": 2', '"quantity": 200').encode()
        signed_other = {**headers, "X-Shopify-Hmac-Sha256": _sign(emulator.api_secret, body.encode())}
        responses = [
            httpx.post(url, content=tampered, headers=signed_other),
            httpx.post(url, content=body.encode(),
                       headers={**headers, "X-Shopify-Hmac-Sha256": _sign("someone-else", body.encode())}),
            httpx.post(url, content=body.encode(), headers={**headers, "X-Shopify-Hmac-Sha256": "!!!"}),
        ]
        assert [r["status_code"] for r in refusals] == [401, 401, 401]
        assert [r.status_code for r in responses] == [401, 401, 401]
        assert {r.json()["type"] for r in responses} == {"/problems/unauthorized"}
        assert len({r.text for r in responses}) == 1   # the same body whatever the reason
        stack.drained()
        assert _redis_state(stack) == redis_before
        assert _pg_state(stack) == pg_before
        # the previous secret still verifies during a rotation, the new one too
        assert send(stack, "orders/create", body)["status_code"] == 200
        fresh = body.replace("123456789", "123456790").encode()
        r = httpx.post(url, content=fresh, headers={**headers, "X-Shopify-Event-Id": "e-2",
                                                    "X-Shopify-Hmac-Sha256": _sign("rotated-secret", fresh)})
        assert r.status_code == 200 and r.json()["status"] == "accepted"
        assert stack.inventory("MUG")["reserved"] == 4


def test_bodies_over_2_mib_are_refused_before_parsing(emulator, redis_url, database_url):
    with shopify_stack(emulator, redis_url, database_url, workers=False) as stack:
        url = f"{stack.app.base_url}/webhooks/shopify"
        big = b'{"id": 1, "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": emulator.shop_domain,
                   "X-Shopify-Hmac-Sha256": _sign(emulator.api_secret, big),
                   "Content-Type": "application/json"}
        r = httpx.post(url, content=big, headers=headers)
        assert r.status_code == 413 and r.json()["type"] == "/problems/payload-too-large"
        # 1.5 MiB (over the API's 1 MiB) is fine for a webhook
        ok = b'{"id": 2, "line_items": [], "pad": "' + b"x" * (1536 * 1024) + b'"}'
        r = httpx.post(url, content=ok, headers={**headers, "X-Shopify-Hmac-Sha256": _sign(emulator.api_secret, ok)})
        assert r.status_code == 200 and r.json() == {"status": "ignored"}
