"""Webhook bodies, headers, signatures and the delivery behaviours a receiver must survive."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from emulator import EmulatorError


def _verify(secret: str, body: bytes, signature: str) -> bool:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), signature)


def _keys_deep(value, path=""):
    """Every key path in a JSON value, list items merged, so shapes compare structurally."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(f"{path}.{k}")
            out |= _keys_deep(v, f"{path}.{k}")
    elif isinstance(value, list):
        for item in value:
            out |= _keys_deep(item, f"{path}[]")
    return out


def _buy(emu, qty=2, sku="MUG", **kw):
    return emu.client.purchase([{"sku": sku, "quantity": qty}], **kw)["order"]


@pytest.fixture
def mug(emu):
    return emu.client.seed_products([{"sku": "MUG", "available": 20, "price": "99.00"}])[0]


def test_orders_create_is_shaped_like_the_real_delivery(emu, receiver, mug, load_fixture):
    order = _buy(emu, 2, test=True, email="buyer@example.com")
    [delivery] = receiver.wait_for(1)
    body = json.loads(delivery.body)
    real = load_fixture("orders_create__real_devstore_2025-01.json")
    assert list(body) == list(real)
    assert list(body["line_items"][0]) == list(real["line_items"][0])
    assert list(body["customer"]) == list(real["customer"])
    assert list(body["shipping_address"]) == list(real["shipping_address"])
    assert body["id"] == order["id"]
    assert body["admin_graphql_api_id"] == f"gid://shopify/Order/{order['id']}"
    assert body["name"] == "#1001" and body["order_number"] == 1001 and body["number"] == 1
    assert body["test"] is True and body["email"] == "buyer@example.com"
    assert body["created_at"][-6] in "+-" and "T" in body["created_at"]
    line = body["line_items"][0]
    assert (
        line["sku"],
        line["quantity"],
        line["current_quantity"],
        line["fulfillable_quantity"],
    ) == ("MUG", 2, 2, 2)
    assert line["variant_id"] == mug["variant_id"]
    assert line["requires_shipping"] is True and line["gift_card"] is False
    assert line["price"] == "99.00" and body["total_price"] == "198.00"
    assert line["price_set"]["shop_money"] == {"amount": "99.00", "currency_code": "USD"}
    # compact JSON, exactly the signed bytes
    assert b": " not in delivery.body and b", " not in delivery.body


def test_headers_and_signature(emu, receiver, mug, load_fixture):
    order = _buy(emu)
    [delivery] = receiver.wait_for(1)
    headers = delivery.headers
    expected = {
        k.lower()
        for k in load_fixture("webhook_headers_examples.json")["real_capture_orders_create_2024-08"]
        if not k.startswith("_")
    }
    assert expected <= set(headers)
    assert headers["x-shopify-topic"] == "orders/create"
    assert headers["x-shopify-shop-domain"] == emu.shop_domain
    assert headers["x-shopify-api-version"] == "2026-04"
    assert headers["x-shopify-order-id"] == str(order["id"])
    assert headers["x-shopify-test"] == "false"
    assert headers["user-agent"] == "Shopify-Captain-Hook"
    assert headers["content-type"] == "application/json"
    assert headers["x-shopify-triggered-at"].endswith("Z")
    assert headers["x-shopify-webhook-id"] != headers["x-shopify-event-id"]
    assert _verify(emu.api_secret, delivery.body, headers["x-shopify-hmac-sha256"])
    assert not _verify("another-secret", delivery.body, headers["x-shopify-hmac-sha256"])


def test_cancel_and_refund_bodies_match_the_real_shapes(emu, receiver, mug, load_fixture):
    order = _buy(emu, 1)
    emu.client.cancel(order["id"], restock=True, reason="customer")
    deliveries = receiver.wait_for(3)
    by_topic = {d.headers["x-shopify-topic"]: json.loads(d.body) for d in deliveries}
    cancelled = by_topic["orders/cancelled"]
    real_cancel = load_fixture("orders_cancelled__real_devstore_2025-01.json")
    assert list(cancelled) == list(real_cancel)
    assert cancelled["cancel_reason"] == "customer" and cancelled["cancelled_at"]
    assert cancelled["line_items"][0]["current_quantity"] == 0
    [refund] = cancelled["refunds"]
    assert refund["refund_line_items"][0]["restock_type"] == "cancel"
    assert refund["refund_line_items"][0]["location_id"] == emu.client.state()["locations"][0]["id"]
    assert refund["refund_line_items"][0]["subtotal"] == 99
    real_refund = load_fixture("refunds_create__derived_from_real_cancel_2025-01.json")
    standalone = by_topic["refunds/create"]
    assert _keys_deep(real_refund) <= _keys_deep(standalone)
    assert standalone["order_id"] == order["id"]
    assert standalone["id"] == refund["id"]


def test_app_uninstalled_body_and_token_revocation(emu, receiver, load_fixture):
    emu.client.uninstall()
    [delivery] = receiver.wait_for(1)
    body = json.loads(delivery.body)
    assert list(body) == list(load_fixture("app_uninstalled__shopify_docs_sample_2026-07.json"))
    assert body["myshopify_domain"] == emu.shop_domain
    assert "x-shopify-order-id" not in delivery.headers
    assert emu.client.graphql("{ shop { name } }").status_code == 401


def test_retries_on_500_then_stop_on_200(emu, receiver, mug):
    receiver.statuses = [500, 500, 503]
    _buy(emu)
    deliveries = receiver.wait_for(4)
    emu.client.drain(5)
    time.sleep(0.2)
    assert len(receiver.deliveries) == 4
    assert len({d.headers["x-shopify-webhook-id"] for d in deliveries}) == 1
    assert len({d.body for d in deliveries}) == 1
    attempts = emu.client.webhooks()["attempts"]
    assert [(a["attempt"], a["status_code"], a["ok"]) for a in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 503, False),
        (4, 200, True),
    ]
    assert all(a["latency_ms"] >= 0 for a in attempts)
    assert emu.client.webhooks()["webhooks"][0]["status"] == "delivered"


def test_gives_up_after_eight_retries(emu, receiver, mug):
    receiver.default_status = 500
    _buy(emu)
    assert emu.client.drain(5)["idle"]
    assert len(receiver.deliveries) == 9
    assert emu.client.webhooks()["webhooks"][0]["status"] == "failed"


def test_slow_receiver_counts_as_failure(emu, receiver, mug):
    emu.client.webhook_config(timeout_s=0.2)
    receiver.delay_s = 0.4
    receiver.responder = lambda d: 200
    _buy(emu)
    receiver.wait_for(2, timeout_s=5)
    receiver.delay_s = 0
    assert emu.client.drain(5)["idle"]
    attempts = emu.client.webhooks()["attempts"]
    assert attempts[0]["error"] == "timeout" and attempts[0]["status_code"] is None
    assert attempts[-1]["ok"] is True


def test_duplicates_keep_webhook_and_event_ids(emu, receiver, mug):
    emu.client.webhook_mode("hold")
    for _ in range(3):
        _buy(emu, 1)
    flushed = emu.client.flush(duplicates=[2, 3], seed=7)
    deliveries = receiver.wait_for(flushed["sent"])
    assert 6 <= flushed["sent"] <= 9
    by_webhook: dict[str, set[str]] = {}
    for d in deliveries:
        by_webhook.setdefault(d.headers["x-shopify-webhook-id"], set()).add(
            d.headers["x-shopify-event-id"]
        )
    assert len(by_webhook) == 3
    assert all(len(events) == 1 for events in by_webhook.values())
    counts = [
        sum(1 for d in deliveries if d.headers["x-shopify-webhook-id"] == w) for w in by_webhook
    ]
    assert all(2 <= c <= 3 for c in counts)


def test_shuffled_flush_changes_the_order(emu, receiver, mug):
    emu.client.webhook_mode("hold")
    orders = [_buy(emu, 1)["id"] for _ in range(8)]
    emu.client.flush(shuffle=True, seed=3)
    deliveries = receiver.wait_for(8)
    received = [int(d.headers["x-shopify-order-id"]) for d in deliveries]
    assert sorted(received) == sorted(orders)
    assert received != orders


def test_filtered_flush_delivers_cancel_before_create(emu, receiver, mug):
    emu.client.webhook_mode("hold")
    order = _buy(emu, 1)
    emu.client.cancel(order["id"])
    emu.client.flush(topics=["orders/cancelled"])
    emu.client.flush(order_ids=[order["id"]])
    receiver.wait_for(3)
    assert receiver.topics() == ["orders/cancelled", "orders/create", "refunds/create"]


def test_spread_and_concurrency(emu, receiver, mug):
    emu.client.webhook_mode("hold")
    for _ in range(4):
        _buy(emu, 1)
    started = time.monotonic()
    emu.client.flush(spread_s=0.3, concurrency=4)
    deliveries = receiver.wait_for(4)
    assert time.monotonic() - started >= 0.3
    assert deliveries[-1].received_at - deliveries[0].received_at >= 0.25


def test_delay_mode(emu, receiver, mug):
    emu.client.webhook_mode("delay_ms", delay_ms=300)
    started = time.monotonic()
    _buy(emu, 1)
    [delivery] = receiver.wait_for(1)
    assert delivery.received_at - started >= 0.3


def test_send_with_bad_or_missing_signature_and_other_domain(emu, receiver, fixtures_dir):
    raw = (fixtures_dir / "orders_create__real_devstore_2025-01.json").read_text(encoding="utf-8")
    good = emu.client.send_webhook("orders/create", raw_body=raw, sign="valid")
    bad = emu.client.send_webhook("orders/create", raw_body=raw, sign="bad")
    none = emu.client.send_webhook(
        "orders/create", body={"id": 1}, sign="none", shop_domain="evil.myshopify.com"
    )
    assert good["ok"] and bad["ok"] and none["ok"]
    first, second, third = receiver.wait_for(3)
    assert first.body == raw.encode()
    assert _verify(emu.api_secret, first.body, first.headers["x-shopify-hmac-sha256"])
    assert first.headers["x-shopify-order-id"] == "6198432301356"
    assert not _verify(emu.api_secret, second.body, second.headers["x-shopify-hmac-sha256"])
    assert "x-shopify-hmac-sha256" not in third.headers
    assert third.headers["x-shopify-shop-domain"] == "evil.myshopify.com"
    assert third.body == b'{"id":1}'


def test_flush_without_url_is_refused(emu, mug):
    emu.client.webhook_config(url=None)
    _buy(emu, 1)
    with pytest.raises(EmulatorError) as refused:
        emu.client.flush()
    assert refused.value.status == 409
    assert emu.client.webhooks()["webhooks"][0]["status"] == "queued"
