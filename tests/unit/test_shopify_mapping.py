"""Shopify payloads -> the pool's commands (engine/shopify.py), on the real
fixtures; and the webhook signature check (api/webhooks.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from api.webhooks import signature_valid
from engine import shopify

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"
TTL = 72 * 3600 * 1000


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def delivery(topic: str, event: str = "e-1", webhook: str = "w-1", test: bool = False) -> shopify.Delivery:
    return shopify.Delivery(topic=topic, event_id=event, webhook_id=webhook, test=test)


def test_real_order_with_empty_skus_keeps_four_lines_without_sku():
    cmd = shopify.order_command(delivery("orders/create"), raw("orders_create__real_devstore_2025-01.json"),
                                received_ms=1, record_ttl_ms=TTL, sale_hold_ms=5)
    assert cmd.order_id == "shp_6198432301356" and cmd.shopify_order_id == "6198432301356"
    assert cmd.keys[-1] == "so:6198432301356" and len(cmd.keys) == 3
    assert cmd.order["policy"] == "accept" and cmd.order["unknown_sku"] == "exception"
    assert cmd.order["lines"] == [{"sku": None, "qty": 1}] * 4
    assert cmd.sold == ()           # nothing Shopify tracks by a SKU onhand could know
    header = json.loads(cmd.order["doc"])
    assert header["source"] == "shopify" and header["currency"] == "HKD"
    assert header["shopify_order_id"] == "6198432301356" and header["test"] is False
    assert [l["shopify_line_item_id"] for l in header["lines"]] == [
        "15514975502636", "15514975535404", "15514975568172", "15514975600940"]
    assert header["created_at_ms"] == 1737615577000   # "2025-01-23T01:59:37-05:00"
    assert header["ship_to"]["country_code"] == "HK"


def test_test_notification_is_a_test_order():
    cmd = shopify.order_command(delivery("orders/create"),
                                raw("orders_create__shopify_test_notification_sample_2025-10.json"),
                                received_ms=1, record_ttl_ms=TTL)
    assert cmd.order["test"] is True
    assert [l["sku"] for l in cmd.order["lines"]] == ["711719510674", "799366664771", "14633376753"]
    # the variants are not tracked by Shopify (null inventory management): no sale to count
    assert cmd.sold == ()


def test_lines_that_do_not_ship_are_left_out_and_an_order_of_them_is_nothing():
    order = {"id": 5, "line_items": [
        {"id": 1, "sku": "MUG", "quantity": 2, "requires_shipping": True, "gift_card": False},
        {"id": 2, "sku": "GIFT", "quantity": 1, "requires_shipping": False, "gift_card": True},
        {"id": 3, "sku": "EBOOK", "quantity": 1, "requires_shipping": False},
        {"id": 4, "sku": "MUG", "quantity": 1}]}
    cmd = shopify.order_command(delivery("orders/create"), json.dumps(order).encode(),
                                received_ms=7, record_ttl_ms=TTL)
    assert cmd.order["lines"] == [{"sku": "MUG", "qty": 2}, {"sku": "MUG", "qty": 1}]  # never merged
    assert cmd.sold == (("MUG", 3),)
    only_gifts = {"id": 6, "line_items": [order["line_items"][1]]}
    assert shopify.order_command(delivery("orders/create"), json.dumps(only_gifts).encode(),
                                 received_ms=7, record_ttl_ms=TTL) is None


def test_real_cancel_cancels_and_carries_its_refund():
    cmd = shopify.cancel_command(delivery("orders/cancelled"), raw("orders_cancelled__real_devstore_2025-01.json"),
                                 record_ttl_ms=TTL)
    assert (cmd.cancel, cmd.order_id) == (True, "shp_6198821716268")
    [refund] = cmd.refunds
    assert refund.id == "982959849772"
    assert [(l.li, l.qty, l.restock_type) for l in refund.lines] == [("15515765276972", 1, "cancel")]
    assert refund.restocked == ()   # restocked, but under an empty SKU


def test_refunds_by_restock_type_and_location():
    rest = shopify.refund_command(delivery("refunds/create"),
                                  raw("refunds_create__shopify_docs_example_rest_refund.json"),
                                  record_ttl_ms=TTL)
    assert rest.order_id == "shp_450789469"
    [refund] = rest.refunds
    assert [(l.li, l.restock_type) for l in refund.lines] == [
        ("703073504", "legacy_restock"), ("466157049", "legacy_restock")]
    assert refund.restocked == (("IPOD2008BLACK", 1), ("IPOD2008GREEN", 1))
    # a restock at another location does not move the synced location's available
    elsewhere = shopify.refund_command(delivery("refunds/create"),
                                       raw("refunds_create__shopify_docs_example_rest_refund.json"),
                                       record_ttl_ms=TTL, location_id=1)
    assert elsewhere.refunds[0].restocked == ()
    docs = shopify.refund_command(delivery("refunds/create"),
                                  raw("refunds_create__shopify_docs_sample_2026-07.json"), record_ttl_ms=TTL)
    assert {l.restock_type for l in docs.refunds[0].lines} == {"no_restock"}
    assert docs.refunds[0].restocked == ()
    assert len(docs.refunds[0].lines) == 5


def test_dedupe_keys_are_per_topic_and_event_and_webhook():
    a = shopify.dedupe_keys(delivery("orders/create", "evt", "w1"), b"{}")
    b = shopify.dedupe_keys(delivery("orders/create", "evt", "w2"), b"{}")
    c = shopify.dedupe_keys(delivery("orders/cancelled", "evt", "w1"), b"{}")
    assert a[0] == b[0] and a[0] != c[0] and a[1] == "wid:w1"
    assert all(len(k) <= 128 for k in a + c)
    bare = shopify.dedupe_keys(shopify.Delivery(topic="orders/create"), b'{"id": 1}')
    assert bare[0].startswith("body:")


def test_uninstall_and_unknown_topics():
    body = raw("app_uninstalled__shopify_docs_sample_2026-07.json")
    cmd = shopify.delivery_command(delivery("app/uninstalled"), body, received_ms=1, record_ttl_ms=TTL)
    assert cmd.topic == "app/uninstalled" and cmd.order_id is None
    assert shopify.delivery_command(delivery("products/update"), body, received_ms=1, record_ttl_ms=TTL) is None


@pytest.mark.parametrize("body", [b"[1, 2]", b"{not json", b'{"line_items": []}', b'{"id": "abc"}'])
def test_bodies_that_are_not_the_resource_are_malformed(body):
    with pytest.raises(shopify.MalformedPayload):
        shopify.order_command(delivery("orders/create"), body, received_ms=1, record_ttl_ms=TTL)


def test_numeric_ids():
    assert shopify.numeric_id("gid://shopify/Location/103709376812") == 103709376812
    assert shopify.numeric_id("gid://shopify/InventoryLevel/16?inventory_item_id=5") == 16
    assert shopify.numeric_id(42) == 42 and shopify.numeric_id("x") is None and shopify.numeric_id(None) is None


def _sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_signature_over_the_raw_bytes_with_current_or_previous_secret():
    body = raw("orders_create__real_devstore_2025-01.json")
    assert signature_valid(["new", "old"], body, _sign("new", body))
    assert signature_valid(["new", "old"], body, _sign("old", body))
    assert not signature_valid(["new"], body, _sign("old", body))
    assert not signature_valid(["new"], body + b" ", _sign("new", body))        # one byte more
    assert not signature_valid(["new"], json.dumps(json.loads(body)).encode(), _sign("new", body))
    assert not signature_valid(["new"], body, None)
    assert not signature_valid(["new"], body, "not base64 at all \u00e9")
    assert not signature_valid([], body, _sign("", body))                     # no secret: nothing verifies
