"""Many merchants in one deployment (one Redis, one PostgreSQL): each one's
keys, orders, SKUs, customers, ledger and Shopify shop are its own, the
same SKU names and PO numbers in two merchants never meet, another
merchant's ids are 404 everywhere, the workers drain every merchant's
outbox, and reconcile and rebuild work per merchant."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time

import pytest
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import create_engine, text

from api.auth import issue_key
from engine.keys import Keys
from engine.store import Store
from persistence import merchants
from persistence.rebuild import Rebuilder, rebuild_where_needed
from persistence.reconcile import reconcile
from tests.e2e.test_shopify_support import fixture_bytes
from tests.harness import running_stack
from tests.procs import env_for
from tests.servers import new_merchant

pytestmark = pytest.mark.anyio

SHOP_B = "merchant-b.myshopify.com"
SECRET_B = "shpss_merchant_b_secret"


async def _add_merchant(stack, merchant: str, **shopify) -> str:
    """Registers a merchant, gives it an empty pool and returns its first admin key."""
    engine = create_engine(stack.settings.database_url)
    try:
        with engine.begin() as conn:
            merchants.create(conn, stack.redis, merchants.MerchantRecord(merchant, f"Merchant {merchant}", shopify),
                             home=stack.settings.merchant)
        Rebuilder(stack.redis, engine, Keys(merchant)).run()
    finally:
        engine.dispose()
    redis = AsyncRedis.from_url(stack.settings.redis_url)
    try:
        store = Store(redis, merchant)
        _, key = await issue_key(store, "admin", None, "b admin", int(time.time() * 1000))
    finally:
        await redis.aclose()
    return key


def _drop(stack, merchant: str) -> None:
    for key in list(stack.redis.scan_iter(match=Keys(merchant).pattern(), count=1000)):
        stack.redis.delete(key)


class As:
    """Requests with one merchant's key."""

    def __init__(self, stack, key: str):
        self.stack, self.headers = stack, {"Authorization": f"Bearer {key}"}

    async def call(self, method: str, path: str, body=None, **params):
        return await self.stack.client.request(method, path, json=body, headers=self.headers,
                                               params=params or None)


async def _world(who: As, on_hand: int, po: str) -> dict:
    """The same names in each merchant: SKU SAME, customer Acme, PO po."""
    assert (await who.call("PUT", "/v1/skus/SAME", {"name": "same"})).status_code == 200
    r = await who.call("POST", "/v1/inventory/receipts", {"reference": "R-1",
                                                          "lines": [{"sku": "SAME", "quantity": on_hand}]})
    assert r.status_code == 201, r.text
    customer = (await who.call("POST", "/v1/customers", {"name": "Acme", "profiles": [
        {"channel": "wholesale"}]})).json()
    order = await who.call("POST", "/v1/orders", {"channel": "wholesale", "customer_id": customer["id"],
                                                  "po_number": po, "lines": [{"sku": "SAME", "quantity": 3}]})
    assert order.status_code == 201, order.text
    return {"customer": customer, "order": order.json()}


async def test_two_merchants_share_names_and_never_see_each_other(redis_url, database_url, broker_url):
    async with running_stack(redis_url, database_url, broker_url=broker_url) as stack:
        b = new_merchant()
        try:
            home = As(stack, "test-admin-key-0123456789")
            other = As(stack, await _add_merchant(stack, b))
            a_world = await _world(home, 10, "PO-1")
            b_world = await _world(other, 100, "PO-1")
            # the same SKU name holds each merchant's own stock
            assert (await home.call("GET", "/v1/inventory/SAME")).json()["available"] == 7
            assert (await other.call("GET", "/v1/inventory/SAME")).json()["available"] == 97
            await stack.drained()
            # every read of B's key sees B's alone; A's ids are 404
            oid, cid = a_world["order"]["id"], a_world["customer"]["id"]
            for method, path, body in [
                ("GET", f"/v1/orders/{oid}", None), ("GET", f"/v1/customers/{cid}", None),
                ("POST", f"/v1/orders/{oid}/cancel", {}),
                ("POST", f"/v1/orders/{oid}/shipments", {"method": "parcel",
                                                          "lines": [{"sku": "SAME", "quantity": 1}]}),
                ("GET", f"/v1/orders/{oid}/pick-list", None), ("GET", f"/v1/orders/{oid}/packing-slip.pdf", None),
                ("POST", "/v1/returns", {"order_id": oid, "lines": [{"sku": "SAME", "quantity": 1,
                                                                     "restock": True}]}),
            ]:
                r = await other.call(method, path, body)
                assert r.status_code == 404, (method, path, r.status_code, r.text)
            listed = (await other.call("GET", "/v1/orders", po_number="PO-1")).json()
            assert [o["id"] for o in listed["items"]] == [b_world["order"]["id"]]
            assert [c["id"] for c in (await other.call("GET", "/v1/customers", q="acme")).json()["items"]] == \
                [b_world["customer"]["id"]]
            ledger = (await other.call("GET", "/v1/ledger", sku="SAME")).json()
            assert {e["order_id"] for e in ledger["items"]} == {None, b_world["order"]["id"]}
            assert ledger["items"][-1]["on_hand"] == 100
            keys = (await other.call("GET", "/v1/api-keys")).json()
            assert keys["total"] == 1 and keys["items"][0]["id"].endswith(f"_{b}")
            # PostgreSQL holds both, apart
            engine = create_engine(stack.settings.database_url)
            try:
                with engine.connect() as conn:
                    rows = dict(conn.execute(text("SELECT merchant_id, on_hand FROM skus WHERE sku = 'SAME'")).all())
                assert rows == {stack.settings.merchant: 10, b: 100}
                # reconcile finds each merchant clean on its own
                for merchant in (stack.settings.merchant, b):
                    result = await asyncio.to_thread(reconcile, stack.redis, engine, Keys(merchant), settle_s=0.5)
                    assert result.drifts == [] and result.checked_orders == 1, (merchant, result.drifts)
                # B's Redis state lost: the rebuild brings back B alone, A untouched
                a_before = stack.redis.hgetall(Keys(stack.settings.merchant).sku("SAME"))
                _drop(stack, b)
                rebuilt = await asyncio.to_thread(rebuild_where_needed, stack.redis, engine, stack.settings.merchant)
                assert [m for m, _ in rebuilt] == [b]
                assert stack.redis.hgetall(Keys(stack.settings.merchant).sku("SAME")) == a_before
            finally:
                engine.dispose()
            assert (await other.call("GET", "/v1/inventory/SAME")).json()["available"] == 97
            r = await other.call("GET", f"/v1/orders/{b_world['order']['id']}")
            assert r.status_code == 200 and r.json()["po_number"] == "PO-1"
        finally:
            _drop(stack, b)


def _signed(body: bytes, secret: str, shop: str, topic: str = "orders/create") -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": digest, "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Event-Id": f"ev-{time.monotonic_ns()}", "X-Shopify-Webhook-Id": f"wh-{time.monotonic_ns()}",
            "X-Shopify-API-Version": "2026-04", "Content-Type": "application/json"}


async def test_a_shops_webhooks_belong_to_its_merchant(redis_url, database_url):
    """Given merchant B with its own shop and API secret, its shop's signed
    orders/create reserves B's stock; the same body signed with another
    secret, or another merchant's, is refused and changes nothing."""
    async with running_stack(redis_url, database_url, workers=False, shopify_api_secret="home-secret",
                             shopify_shop="home.myshopify.com") as stack:
        b = new_merchant()
        try:
            other = As(stack, await _add_merchant(stack, b, shopify_shop=SHOP_B, shopify_api_secret=SECRET_B))
            payload = json.loads(fixture_bytes("orders_create__real_devstore_2025-01.json"))
            skus = {li["sku"] for li in payload["line_items"] if li.get("sku")}
            for sku in skus:
                assert (await other.call("PUT", f"/v1/skus/{sku}", {"name": sku})).status_code == 200
            body = json.dumps(payload).encode()
            # B's shop, signed with the home merchant's secret: refused
            r = await stack.client.post("/webhooks/shopify", content=body,
                                        headers=_signed(body, "home-secret", SHOP_B))
            assert r.status_code == 401
            r = await stack.client.post("/webhooks/shopify", content=body, headers=_signed(body, SECRET_B, SHOP_B))
            assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
            order_id = r.json()["order_id"]
            assert (await other.call("GET", f"/v1/orders/{order_id}")).status_code == 200
            # the home merchant has no such order
            assert (await stack.get(f"/v1/orders/{order_id}")).status_code == 404
        finally:
            _drop(stack, b)


async def test_onhand_merchants_create_gives_a_working_admin_key(redis_url, database_url, tmp_path):
    async with running_stack(redis_url, database_url) as stack:
        b = new_merchant()
        try:
            env = env_for(stack.settings)
            done = await asyncio.to_thread(subprocess.run, [
                sys.executable, "-m", "onhand", "merchants", "create", b, "--name", "Beta Goods",
                "--shopify-shop", "https://Beta.myshopify.com/"], env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            key = done.stdout.strip()
            assert key.startswith("onh_key_") and key.count("_") == 4
            other = As(stack, key)
            assert (await other.call("PUT", "/v1/skus/NEW-1", {"name": "new"})).status_code == 200
            assert (await stack.get("/v1/inventory/NEW-1")).status_code == 404  # not the home merchant's
            again = await asyncio.to_thread(subprocess.run, [
                sys.executable, "-m", "onhand", "merchants", "create", b], env=env, capture_output=True, text=True,
                timeout=120)
            assert again.returncode == 2 and "exists" in again.stderr
            listed = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "onhand", "merchants", "list"],
                                             env=env, capture_output=True, text=True, timeout=120)
            assert b in listed.stdout and "beta.myshopify.com" in listed.stdout and "ready" in listed.stdout
        finally:
            _drop(stack, b)


def test_rows_from_before_merchants_belong_to_the_deployments_merchant(pg_server_url):
    """Given a database at migration 0010 with data, upgrading with
    ONHAND_MERCHANT=shopa gives every row merchant shopa; the downgrade and
    the upgrade again keep the data."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine as engine_for

    from persistence.db import migrations_dir, sqlalchemy_url
    from tests.conftest import _admin, database_url_for

    name = "onhand_mig_" + new_merchant()
    admin = _admin(pg_server_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = database_url_for(pg_server_url, name)
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["url"] = sqlalchemy_url(url)
    engine = engine_for(url)
    try:
        command.upgrade(cfg, "0010")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO skus (sku, on_hand, reserved_dtc, reserved_wholesale, backordered_dtc, "
                              "backordered_wholesale, exception, dtc_reserve, version, details) "
                              "VALUES ('OLD-1', 5, 0, 0, 0, 0, 0, 0, 1, '{}')"))
            conn.execute(text("INSERT INTO orders (id, seq, channel, status, backorder_policy, header, version, "
                              "created_at, updated_at) VALUES ('ord_old', 1, 'dtc', 'open', 'accept', '{}', 1, "
                              "now(), now())"))
            conn.execute(text("INSERT INTO order_lines VALUES ('ord_old', 0, 'OLD-1', 2, 2, 0, 0, 0, 0, 0, NULL, true)"))
        cfg.attributes["merchant"] = "shopa"
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT merchant_id FROM skus")).scalars().all() == ["shopa"]
            assert conn.execute(text("SELECT merchant_id, reserved FROM reservations")).all() == [("shopa", 2)]
        command.downgrade(cfg, "0010")
        del cfg.attributes["merchant"]
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT merchant_id, order_id FROM order_lines")).all() == [
                ("default", "ord_old")]  # upgraded again without a merchant: the default one
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
