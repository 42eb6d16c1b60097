"""Pure parts of notifications: the address rules, the retry schedule,
signatures a standardwebhooks receiver accepts, event derivation, emails."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from notifications import emails
from notifications.addresses import UrlRefused, parse, refusal, target
from notifications.events import derive, entry_position, event_id
from notifications.retry import backoff_ms, schedule
from notifications.signing import new_secret, signed_headers


@pytest.mark.parametrize("address", ["127.0.0.1", "127.9.9.9", "169.254.169.254", "10.0.0.1", "172.31.1.1",
                                     "192.168.0.1", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
                                     "::1", "::", "fe80::1", "fd12::1", "ff02::1", "::ffff:127.0.0.1",
                                     "::ffff:169.254.169.254", "2002:0a00:0001::1", "192.0.2.1", "198.18.0.1"])
def test_non_global_addresses_are_refused(address):
    assert refusal(address) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"])
def test_global_addresses_pass(address):
    assert refusal(address) is None


@pytest.mark.parametrize("url", ["ftp://8.8.8.8/", "file:///etc/passwd", "http://u:p@8.8.8.8/", "http:///x",
                                 "http://8.8.8.8/a b", "javascript:alert(1)", "http://8.8.8.8:99999/",
                                 "http://8.8.8.8/#frag", "x" * 3000])
def test_malformed_urls_are_refused(url):
    with pytest.raises(UrlRefused):
        parse(url)


def test_a_name_is_refused_when_it_resolves_to_loopback_and_allowed_with_the_flag():
    with pytest.raises(UrlRefused, match="forbidden address"):
        asyncio.run(target("http://localhost:8080/x", allow_private=False))
    to = asyncio.run(target("https://localhost:8443/x?y=1", allow_private=True))
    assert to.url.startswith("https://127.0.0.1:8443/x?y=1") or to.url.startswith("https://[::1]:8443/")
    assert to.host_header == "localhost:8443" and to.host == "localhost"


def test_backoff_doubles_is_jittered_and_capped():
    rng = random.Random(1)
    waits = [backoff_ms(n, base_ms=1000, cap_ms=60_000, rng=rng) for n in range(1, 12)]
    for n, w in enumerate(waits, start=1):
        step = min(60_000, 1000 * 2 ** (n - 1))
        assert step // 2 <= w <= step
    nominal = schedule(base_ms=10_000, cap_ms=4 * 3600 * 1000, window_s=3 * 86400)
    assert nominal[:3] == [10_000, 20_000, 40_000] and max(nominal) == 4 * 3600 * 1000
    assert sum(nominal) <= 3 * 86400 * 1000


def test_signatures_verify_with_standardwebhooks_and_tampering_does_not():
    secret = new_secret()
    body = '{"id":"evt_1","type":"order.created","data":{}}'
    now = int(datetime.now(UTC).timestamp())
    headers = signed_headers(secret, "evt_1", body, now)
    assert Webhook(secret).verify(body, headers)["id"] == "evt_1"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("created", "shipped"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def _snap(oid: str, v: int, lines: list, shipments: str = "[]") -> dict:
    return {"id": oid, "n": 7, "c": "wholesale", "p": "backorder", "v": v, "u": 1,
            "d": {"customer_id": "c1", "po_number": "PO-9"}, "L": lines, "S": shipments, "R": "[]"}


def test_derive_reads_each_change_and_ids_are_stable():
    created = {"t": "order.accepted", "at": 5, "ledger": [["A", "o1", "reserve", 0, 0, 3, 0, 2, 0, 5]],
               "orders": [_snap("o1", 1, [["A", 5, 3, 2, 0, 0, 0, 0, "", 1]])]}
    [n] = derive("m", "100-0", created)
    assert (n.type, n.po_number, n.customer_id) == ("order.created", "PO-9", "c1")
    assert n.payload["order"]["lines"][0] | {} == {"sku": "A", "quantity": 5, "reserved": 3, "backordered": 2,
                                                   "exception": 0, "cancelled": 0, "shipped": 0, "returned": 0}
    assert n.id == event_id("m", "100-0", "o1", "order.created") == derive("m", "100-0", created)[0].id
    assert n.id != derive("other", "100-0", created)[0].id
    # a receipt that fills o1 and also (same entry) o2
    filled = {"t": "stock.received", "at": 6, "ledger": [["A", "", "receipt", 4, 0, 0, 0, 0, 0, 4],
                                                         ["A", "o1", "fill", 0, 0, 2, 0, -2, 0, 2]],
              "orders": [_snap("o1", 2, [["A", 5, 5, 0, 0, 0, 0, 0, "", 1]])]}
    [f] = derive("m", "101-0", filled)
    assert f.type == "order.backorder_filled" and f.payload["filled"] == [{"sku": "A", "units": 2}]
    shipment = {"id": "s1", "order_id": "o1", "carrier": "UPS", "tracking_number": "1Z",
                "lines": [{"sku": "A", "line": 0, "quantity": 5}], "shipped_at_ms": 7}
    shipped = {"t": "order.shipped", "at": 7, "shipment": shipment, "ledger": [],
               "orders": [_snap("o1", 3, [["A", 5, 0, 0, 0, 5, 0, 0, "", 1]])]}
    [s] = derive("m", "102-0", shipped)
    assert s.type == "order.shipped" and s.payload["shipment"]["tracking_number"] == "1Z"
    assert s.payload["shipment"]["lines"] == [{"sku": "A", "quantity": 5}]
    assert (s.entry_ms, s.entry_seq) == entry_position("102-0") == (102, 0)
    # a change that touches no order means nothing to a customer
    assert derive("m", "103-0", {"t": "sku.put", "at": 8, "ledger": [], "orders": {}}) == []


def test_emails_render_with_the_po_number_and_a_stable_message_id():
    data = {"order": {"id": "o1", "number": 12, "po_number": "PO-9", "lines": [
        {"sku": "A", "quantity": 5, "reserved": 3, "backordered": 2, "cancelled": 0}]}}
    msg = emails.build(kind=emails.ORDER_CONFIRMATION, event_id="evt_x", data=data, sender="Shop <s@shop.example>",
                       recipient="buyer@example.com", merchant="Shop", names={"A": "Apple"},
                       occurred_at=datetime.now(UTC))
    assert "PO-9" in msg["Subject"] and "12" in msg["Subject"]
    assert "PO-9" in msg.get_body(("plain",)).get_content() and "2 backordered" in msg.get_body(("plain",)).get_content()
    assert msg["Message-ID"] == "<evt_x.order_confirmation@shop.example>"
    # HTML escapes what customers typed
    data["order"]["po_number"] = "<script>x</script>"
    msg = emails.build(kind=emails.ORDER_CONFIRMATION, event_id="evt_x", data=data, sender="s@shop.example",
                       recipient="buyer@example.com", merchant="Shop", names={}, occurred_at=datetime.now(UTC))
    assert "<script>" not in msg.get_body(("html",)).get_content()


def test_smtp_urls():
    s = emails.parse_smtp_url("smtp://user%40x:p%3Ass@mail.example:2525?starttls=1")
    assert (s.hostname, s.port, s.username, s.password, s.start_tls, s.use_tls) == (
        "mail.example", 2525, "user@x", "p:ss", True, False)
    assert emails.parse_smtp_url("smtps://mail.example").port == 465
    assert emails.parse_smtp_url("smtp://mail.example?starttls=1").port == 587
    with pytest.raises(ValueError):
        emails.parse_smtp_url("http://mail.example")
