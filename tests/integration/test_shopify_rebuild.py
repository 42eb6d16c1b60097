"""What the Shopify intake keeps survives a Redis rebuilt from PostgreSQL:
dedupe records (a repeat is still a duplicate), cancels kept for an order not
seen yet (still applied when it comes), and the app's uninstalled state."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import create_engine

from engine import shopify
from engine.commands import Op, PutSku, ReceiveStock, SkuQty
from engine.errors import NotFound
from engine.keys import Keys
from engine.store import Store
from persistence.rebuild import Rebuilder
from tests.harness import cleanup, initialise, stack_settings
from workers.outbox import Drainer

pytestmark = pytest.mark.anyio
TTL = 72 * 3600 * 1000


def op() -> Op:
    return Op(op_id=uuid.uuid4().hex, now_ms=1_800_000_000_000, actor="shopify")


def order(sid: int, qty: int) -> bytes:
    return msgspec.json.encode({"id": sid, "line_items": [
        {"id": 11, "sku": "MUG", "quantity": qty, "requires_shipping": True}]})


async def test_records_pending_cancels_and_uninstall_survive_a_rebuild(redis_url, database_url):
    settings = stack_settings(redis_url, database_url)
    initialise(settings)
    keys = Keys(settings.merchant)
    sync_redis, engine = Redis.from_url(redis_url), create_engine(database_url)
    store = Store(AsyncRedis.from_url(redis_url), settings.merchant)
    try:
        await store.start()
        await store.run(PutSku(sku="MUG"), op())
        await store.run(ReceiveStock(receipt_id="r1", lines=(SkuQty(sku="MUG", qty=5),)), op())
        seen = shopify.order_command(shopify.Delivery(topic="orders/create", event_id="e1", webhook_id="w1"),
                                     order(1001, 2), received_ms=1, record_ttl_ms=TTL)
        await store.run(seen, op())
        cancel = shopify.cancel_command(shopify.Delivery(topic="orders/cancelled", event_id="e2",
                                                         webhook_id="w2"),
                                        order(1002, 3), record_ttl_ms=TTL)
        with pytest.raises(NotFound):
            await store.run(cancel, op())
        await store.run(msgspec.structs.replace(cancel, if_missing="pend"), op())
        await store.run(shopify.uninstall_command(shopify.Delivery(topic="app/uninstalled", event_id="e3"),
                                                  b"{}", record_ttl_ms=TTL), op())
        Drainer(sync_redis, engine, keys, slot=0).run_for(1.0)
        assert sync_redis.xlen(keys.outbox) == 0

        # Redis loses everything of the merchant; it is rebuilt from PostgreSQL
        cleanup(settings)
        report = Rebuilder(sync_redis, engine, keys).run()
        assert report.shopify_pending == 1 and report.webhook_records >= 3

        assert (await store.run(seen, op())).data["duplicate"] is True
        again = shopify.order_command(shopify.Delivery(topic="orders/create", event_id="e9", webhook_id="w9"),
                                      order(1001, 2), received_ms=1, record_ttl_ms=TTL)
        assert (await store.run(again, op())).data["duplicate"] is True      # by Shopify order id
        assert sync_redis.get(f"{keys.prefix}:shopify:app") == b"uninstalled"
        [inv] = await store.inventory(["MUG"])
        assert (inv.available, inv.reserved) == (3, 2)
        # the cancel kept for order 1002 is applied when the order arrives
        late = shopify.order_command(shopify.Delivery(topic="orders/create", event_id="e4", webhook_id="w4"),
                                     order(1002, 3), received_ms=1, record_ttl_ms=TTL)
        await store.run(late, op())
        placed = await store.order("shp_1002")
        assert (placed.lines[0].reserved, placed.lines[0].cancelled) == (0, 3)
        [inv] = await store.inventory(["MUG"])
        assert (inv.available, inv.reserved) == (3, 2)
    finally:
        await store.redis.aclose()
        sync_redis.close()
        engine.dispose()
        cleanup(settings)
