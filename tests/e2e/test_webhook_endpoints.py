"""The webhook endpoints API: who may see and change what, bad input,
Idempotency-Key, replay, and the server-side request forgery rules (with
ONHAND_WEBHOOKS_ALLOW_PRIVATE unset: these tests never connect to the
forbidden addresses, they are refused before any connection is made)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.harness import running_stack
from tests.notify_helpers import FAST_RETRIES, eventually, subscribe, wholesale_customer
from tests.receiver import Receiver

pytestmark = pytest.mark.anyio

FORBIDDEN = ["http://127.0.0.1:8080/hook", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook",
             "http://localhost/hook", "http://[::1]/hook", "http://[::ffff:10.0.0.1]/hook",
             "http://0.0.0.0/", "http://192.168.1.10/", "http://172.16.0.1/", "http://[fd00::1]/",
             "http://224.0.0.1/", "http://100.64.0.1/", "ftp://example.com/", "file:///etc/passwd",
             "http://user:pw@8.8.8.8/", "gopher://8.8.8.8/"]


async def test_ssrf_refused_at_creation(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False) as stack:
        for url in FORBIDDEN:
            r = await stack.post("/v1/webhook-endpoints", {"url": url})
            assert r.status_code == 400, (url, r.text)
            problem = r.json()
            assert problem["type"] == "/problems/validation" and problem["errors"][0]["field"] == "url", url
        r = await stack.get("/v1/webhook-endpoints")
        assert r.json()["total"] == 0  # nothing was created
        # a public address is accepted (nothing is sent to it here: no event happens)
        endpoint = await subscribe(stack, "https://8.8.8.8/hooks")
        r = await stack.client.patch(f"/v1/webhook-endpoints/{endpoint['id']}", headers=_admin(stack),
                                     json={"url": "http://169.254.169.254/"})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "url"


def _admin(stack) -> dict:
    from tests.harness import ADMIN

    return ADMIN


async def _one_order(stack) -> None:
    assert (await stack.put("/v1/skus/PEN", {"name": "Pen"})).status_code == 200
    r = await stack.post("/v1/orders", {"channel": "wholesale", "lines": [{"sku": "PEN", "quantity": 1}]})
    assert r.status_code == 201, r.text


def _log(database_url: str, endpoint_id: str):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("select status, attempts, last_status_code, last_error from webhook_deliveries "
                                 "where endpoint_id = :e"), {"e": endpoint_id}).all()
    engine.dispose()
    return rows


async def test_redirects_are_never_followed(redis_url, database_url):
    # Given an endpoint that answers 302 to another URL (on this machine: the
    # rule is the same whatever the Location says, 169.254.169.254 included)
    async with running_stack(redis_url, database_url, **FAST_RETRIES) as stack:
        elsewhere = Receiver().start()
        redirector = Receiver(mode="redirect", redirect_to=elsewhere.url).start()
        endpoint = await subscribe(stack, redirector.url)
        # When an event is delivered
        await _one_order(stack)
        await eventually(lambda: sum(redirector.hits.values()) >= 2, what="attempts")
        # Then the redirect counts as a failed attempt and is never followed
        assert sum(elsewhere.hits.values()) == 0
        rows = _log(database_url, endpoint["id"])
        assert rows and all(r.status == "pending" and r.last_status_code == 302 for r in rows)
        assert rows[0].last_error == "redirect not followed"
        elsewhere.stop()
        redirector.stop()


async def test_deliveries_check_the_address_they_connect_to(redis_url, database_url):
    # Given an endpoint whose address is no longer allowed (its name now
    # resolves to a private address: here, one stored on loopback, with
    # ONHAND_WEBHOOKS_ALLOW_PRIVATE unset)
    async with running_stack(redis_url, database_url, webhook_retry_base_ms=200,
                             webhook_retry_cap_ms=500) as stack:
        receiver = Receiver().start()
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(
                "insert into webhook_endpoints (id, merchant_id, url, event_types, secret, enabled, created_by, "
                "created_at, updated_at) values ('we_rebound', :m, :url, array['order.created'], "
                "'whsec_dGVzdHRlc3R0ZXN0dGVzdA==', true, 'test', now(), now())"),
                {"m": stack.settings.merchant, "url": receiver.url.replace("127.0.0.1", "localhost")})
        engine.dispose()
        # When an event is due
        await _one_order(stack)
        await eventually(lambda: any(r.attempts >= 2 for r in _log(database_url, "we_rebound")), what="attempts")
        # Then no connection is made: every attempt is refused before connecting
        assert sum(receiver.hits.values()) == 0
        rows = _log(database_url, "we_rebound")
        assert rows[0].last_error.startswith("refused: localhost resolves to a forbidden address")
        receiver.stop()


async def test_wholesale_keys_see_only_their_customers_endpoints(redis_url, database_url):
    async with running_stack(redis_url, database_url, **FAST_RETRIES) as stack:
        assert (await stack.put("/v1/skus/CUP", {"name": "Cup"})).status_code == 200
        r = await stack.post("/v1/inventory/receipts", {"reference": "in", "lines": [{"sku": "CUP", "quantity": 50}]})
        assert r.status_code == 201
        a, key_a = await wholesale_customer(stack, "Alpha")
        b, key_b = await wholesale_customer(stack, "Beta")
        got_a, got_b, got_all = Receiver().start(), Receiver().start(), Receiver().start()
        ep_a = await subscribe(stack, got_a.url, headers=key_a)
        ep_b = await subscribe(stack, got_b.url, headers=key_b, event_types=["order.created"])
        ep_all = await subscribe(stack, got_all.url)  # admin: merchant-wide
        got_a.secret, got_b.secret, got_all.secret = ep_a["secret"], ep_b["secret"], ep_all["secret"]
        assert ep_all["customer_id"] is None and ep_b["event_types"] == ["order.created"]

        # another customer's endpoint is a 404 everywhere, for reads and changes
        for method, path, body in (("GET", "", None), ("PATCH", "", {"enabled": False}), ("DELETE", "", None),
                                   ("GET", "/deliveries", None), ("POST", "/replay", {"since": "2020-01-01T00:00:00Z"})):
            r = await stack.client.request(method, f"/v1/webhook-endpoints/{ep_b['id']}{path}", headers=key_a,
                                           json=body)
            assert r.status_code == 404, (method, path, r.text)
        listed = (await stack.client.get("/v1/webhook-endpoints", headers=key_a)).json()
        assert [e["id"] for e in listed["items"]] == [ep_a["id"]] and "secret" not in listed["items"][0]
        assert (await stack.get("/v1/webhook-endpoints")).json()["total"] == 3
        # a wholesale key cannot subscribe for another customer, nor merchant-wide
        r = await stack.client.post("/v1/webhook-endpoints", headers=key_a,
                                    json={"url": got_a.url, "customer_id": b["id"]})
        assert r.status_code == 404
        # operators do not manage endpoints
        r = await stack.post("/v1/api-keys", {"role": "operator"})
        operator = {"Authorization": f"Bearer {r.json()['key']}"}
        assert (await stack.client.get("/v1/webhook-endpoints", headers=operator)).status_code == 403

        # When each customer orders (and A's order ships)
        ra = await stack.client.post("/v1/orders", headers=key_a, json={
            "channel": "wholesale", "po_number": "A-1", "lines": [{"sku": "CUP", "quantity": 2}]})
        rb = await stack.client.post("/v1/orders", headers=key_b, json={
            "channel": "wholesale", "po_number": "B-1", "lines": [{"sku": "CUP", "quantity": 3}]})
        assert ra.status_code == rb.status_code == 201
        r = await stack.post(f"/v1/orders/{rb.json()['id']}/shipments",
                             {"lines": [{"sku": "CUP", "quantity": 3}], "method": "parcel"})
        assert r.status_code == 201
        # Then each endpoint receives only its customer's events (of its types),
        # the merchant-wide one everything (B's shipment also made an invoice)
        await eventually(lambda: len(got_all.unique()) == 4 and len(got_a.unique()) == 1
                         and len(got_b.unique()) == 1, what="deliveries")
        assert [e.data["order"]["po_number"] for e in got_a.unique().values()] == ["A-1"]
        assert [(e.type, e.data["order"]["po_number"]) for e in got_b.unique().values()] == [("order.created", "B-1")]
        # and a customer's delivery log holds only its own deliveries
        log_a = (await stack.client.get(f"/v1/webhook-endpoints/{ep_a['id']}/deliveries", headers=key_a)).json()
        assert log_a["total"] == 1 and log_a["items"][0]["event_type"] == "order.created"

        # Replay: one event again, with the same webhook-id
        event_id = log_a["items"][0]["event_id"]
        r = await stack.client.post(f"/v1/webhook-endpoints/{ep_a['id']}/replay", headers=key_a,
                                    json={"event_id": event_id})
        assert r.status_code == 202 and r.json()["queued"] == 1, r.text
        await eventually(lambda: len(got_a.received) == 2, what="replayed delivery")
        assert got_a.ids() == [event_id, event_id]
        # another customer's event cannot be replayed to A's endpoint
        b_event = next(iter(got_b.unique()))
        r = await stack.client.post(f"/v1/webhook-endpoints/{ep_a['id']}/replay", headers=key_a,
                                    json={"event_id": b_event})
        assert r.status_code == 404
        # a time range replays the endpoint's events of that range
        r = await stack.post(f"/v1/webhook-endpoints/{ep_all['id']}/replay", {"since": "2020-01-01T00:00:00Z"})
        assert r.status_code == 202 and r.json()["queued"] == 4
        await eventually(lambda: len(got_all.received) == 8, what="replayed range")
        for receiver in (got_a, got_b, got_all):
            receiver.stop()


async def test_bad_input_and_idempotency(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False, webhooks_allow_private=True) as stack:
        bad = [{"url": "http://127.0.0.1/", "event_types": ["order.exploded"]}, {"url": "http://127.0.0.1/", "x": 1},
               {"url": "http://127.0.0.1/", "event_types": []}, {"url": 5}, {},
               {"url": "http://127.0.0.1/", "customer_id": "cus_nobody"}]
        for body in bad:
            r = await stack.post("/v1/webhook-endpoints", body)
            assert r.status_code in (400, 404), (body, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        assert (await stack.get("/v1/webhook-endpoints")).json()["total"] == 0
        # Idempotency-Key: the same answer again (secret included), another body is 422
        key = {"Idempotency-Key": "create-1"}
        first = await stack.post("/v1/webhook-endpoints", {"url": "http://127.0.0.1:1/a"}, headers=key)
        again = await stack.post("/v1/webhook-endpoints", {"url": "http://127.0.0.1:1/a"}, headers=key)
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json() and first.json()["secret"].startswith("whsec_")
        other = await stack.post("/v1/webhook-endpoints", {"url": "http://127.0.0.1:1/b"}, headers=key)
        assert other.status_code == 422
        assert (await stack.get("/v1/webhook-endpoints")).json()["total"] == 1
        endpoint = first.json()
        # the secret is never shown again
        shown = (await stack.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
        assert "secret" not in shown
        # replay needs exactly one of event_id and since, and a real event
        for body in ({}, {"event_id": "evt_" + "0" * 32, "since": "2020-01-01T00:00:00Z"},
                     {"since": "yesterday"}, {"since": "2020-01-01T00:00:00"},
                     {"until": "2020-01-01T00:00:00Z"}):
            r = await stack.post(f"/v1/webhook-endpoints/{endpoint['id']}/replay", body)
            assert r.status_code == 400, (body, r.text)
        r = await stack.post(f"/v1/webhook-endpoints/{endpoint['id']}/replay", {"event_id": "evt_" + "0" * 32})
        assert r.status_code == 404
        # disable, enable, delete
        r = await stack.client.patch(f"/v1/webhook-endpoints/{endpoint['id']}", headers=_admin(stack),
                                     json={"enabled": False, "event_types": ["order.shipped"]})
        assert r.status_code == 200 and r.json()["enabled"] is False
        assert r.json()["disabled_reason"] == "api" and r.json()["event_types"] == ["order.shipped"]
        r = await stack.client.patch(f"/v1/webhook-endpoints/{endpoint['id']}", headers=_admin(stack),
                                     json={"enabled": True})
        assert r.json()["enabled"] is True and r.json()["disabled_reason"] is None
        assert (await stack.client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=_admin(stack))).status_code == 204
        assert (await stack.get(f"/v1/webhook-endpoints/{endpoint['id']}")).status_code == 404
