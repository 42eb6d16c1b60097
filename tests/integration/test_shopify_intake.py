"""The Shopify intake script on a real Redis: duplicates, accept policy,
pending cancels and refunds, release once, refunds by restock type, and the
sync state the intake keeps (lua/shopify_webhook.lua)."""

from __future__ import annotations

import itertools
import uuid

import msgspec
import pytest

from engine import shopify
from engine.commands import Op, PutSku, ReceiveStock, ShipOrder, SkuQty
from engine.errors import NotFound
from engine.store import Store
from tests.conftest import drop_merchant, ready_store

pytestmark = pytest.mark.anyio

TTL_MS = 72 * 3600 * 1000
_ids = itertools.count(9_000_000_000_000_000_000)


def op() -> Op:
    return Op(op_id=uuid.uuid4().hex, now_ms=1_800_000_000_000, actor="shopify")


def delivery(topic: str, event: str | None = None) -> shopify.Delivery:
    return shopify.Delivery(topic=topic, event_id=event or str(uuid.uuid4()),
                            webhook_id=str(uuid.uuid4()))


def order_body(order_id: int, lines: list[tuple[int, str, int]], *, test: bool = False,
               refunds: list[dict] | None = None) -> bytes:
    return msgspec.json.encode({
        "id": order_id, "name": "#1001", "currency": "USD", "test": test,
        "created_at": "2026-01-05T10:00:00-05:00",
        "line_items": [{"id": li, "sku": sku, "quantity": qty, "price": "9.50",
                        "requires_shipping": True, "gift_card": False,
                        "variant_inventory_management": "shopify"} for li, sku, qty in lines],
        "shipping_address": {"first_name": "Ann", "last_name": "Lee", "address1": "1 Main St",
                             "city": "Springfield", "zip": "12345", "country_code": "US"},
        "refunds": refunds or [],
    })


def refund(refund_id: int, order_id: int, lines: list[tuple[int, str, int, str]]) -> dict:
    return {"id": refund_id, "order_id": order_id, "refund_line_items": [
        {"id": next(_ids), "line_item_id": li, "quantity": qty, "restock_type": kind,
         "location_id": None, "line_item": {"sku": sku, "requires_shipping": True, "gift_card": False}}
        for li, sku, qty, kind in lines]}


async def deliver(store: Store, command, *, pend: bool = True) -> dict:
    try:
        return (await store.run(command, op())).data
    except NotFound:
        if not pend:
            raise
        return (await store.run(msgspec.structs.replace(command, if_missing="pend"), op())).data


async def create(store: Store, body: bytes, event: str | None = None, hold_ms: int = 0) -> dict:
    command = shopify.order_command(delivery("orders/create", event), body,
                                    received_ms=1_800_000_000_000, record_ttl_ms=TTL_MS,
                                    sale_hold_ms=hold_ms)
    return await deliver(store, command)


async def cancelled(store: Store, body: bytes) -> dict:
    return await deliver(store, shopify.cancel_command(delivery("orders/cancelled"), body,
                                                       record_ttl_ms=TTL_MS))


async def refunded(store: Store, body: dict) -> dict:
    return await deliver(store, shopify.refund_command(delivery("refunds/create"),
                                                       msgspec.json.encode(body), record_ttl_ms=TTL_MS))


@pytest.fixture
async def store(redis_url):
    s = await ready_store(redis_url)
    try:
        yield s
    finally:
        await drop_merchant(s.redis, s)
        await s.redis.aclose()


async def stock(store: Store, sku: str, units: int) -> None:
    await store.run(PutSku(sku=sku), op())
    if units:
        await store.run(ReceiveStock(receipt_id=uuid.uuid4().hex[:16],
                                     lines=(SkuQty(sku=sku, qty=units),)), op())


async def counters(store: Store, sku: str) -> tuple[int, int, int]:
    [inv] = await store.inventory([sku])
    return inv.available, inv.reserved, inv.exception


async def test_order_is_accepted_and_what_stock_cannot_cover_is_exception(store):
    await stock(store, "MUG", 5)
    sid = next(_ids)
    data = await create(store, order_body(sid, [(1, "MUG", 3), (2, "MUG", 4), (3, "", 2), (4, "NOPE", 1)]))
    order = await store.order(f"shp_{sid}")
    assert [(l.sku, l.reserved, l.exception, l.exception_reason) for l in order.lines] == [
        ("MUG", 3, 0, None), ("MUG", 2, 2, "oversold"), (None, 0, 2, "missing_sku"),
        ("NOPE", 0, 1, "unknown_sku")]
    assert order.header["source"] == "shopify" and order.header["shopify_order_id"] == str(sid)
    assert [l["shopify_line_item_id"] for l in order.header["lines"]] == ["1", "2", "3", "4"]
    assert data["order_id"] == f"shp_{sid}"
    assert await counters(store, "MUG") == (0, 5, 2)


async def test_repeats_by_event_webhook_or_order_change_nothing(store):
    await stock(store, "MUG", 5)
    sid = next(_ids)
    body = order_body(sid, [(1, "MUG", 2)])
    first = shopify.order_command(delivery("orders/create", "evt-1"), body,
                                  received_ms=1, record_ttl_ms=TTL_MS)
    assert not (await store.run(first, op())).data.get("duplicate")
    outbox = await store.redis.xlen(store.keys.outbox)
    same_webhook = (await store.run(first, op())).data
    same_event = await create(store, body, event="evt-1")
    same_order = await create(store, body, event="evt-2")   # another event, same Shopify order
    assert [d["duplicate"] for d in (same_webhook, same_event, same_order)] == [True] * 3
    assert await counters(store, "MUG") == (3, 2, 0)
    assert await store.redis.xlen(store.keys.outbox) == outbox
    ttl = await store.redis.pttl(f"{store.keys.prefix}:wh:so:{sid}")
    assert ttl > 4 * 3600 * 1000   # kept well past Shopify's 4 hours of retries


async def test_test_orders_reserve_nothing(store):
    await stock(store, "MUG", 5)
    sid = next(_ids)
    await create(store, order_body(sid, [(1, "MUG", 2)], test=True))
    order = await store.order(f"shp_{sid}")
    assert (order.lines[0].reserved, order.lines[0].cancelled) == (0, 2)
    assert await counters(store, "MUG") == (5, 0, 0)


async def test_cancel_before_its_order_is_kept_and_applied_when_it_comes(store):
    await stock(store, "MUG", 5)
    sid = next(_ids)
    lines = [(1, "MUG", 2), (2, "MUG", 1)]
    embedded = refund(next(_ids), sid, [(1, "MUG", 2, "cancel"), (2, "MUG", 1, "cancel")])
    pend = await cancelled(store, order_body(sid, lines, refunds=[embedded]))
    assert pend["pending"] is True
    assert await store.redis.llen(f"{store.keys.prefix}:shp:pend:{sid}") == 1
    # the refund the cancel made arrives too: it was already seen, nothing more is kept
    again = await refunded(store, embedded)
    assert not again.get("pending")
    assert await store.redis.llen(f"{store.keys.prefix}:shp:pend:{sid}") == 1
    await create(store, order_body(sid, lines))
    order = await store.order(f"shp_{sid}")
    assert [(l.reserved, l.cancelled) for l in order.lines] == [(0, 2), (0, 1)]
    assert await counters(store, "MUG") == (5, 0, 0)   # released once: not 8
    assert not await store.redis.exists(f"{store.keys.prefix}:shp:pend:{sid}")


async def test_refund_then_cancel_after_the_order_release_once(store):
    await stock(store, "MUG", 5)
    sid = next(_ids)
    lines = [(1, "MUG", 3)]
    await create(store, order_body(sid, lines))
    assert await counters(store, "MUG") == (2, 3, 0)
    part = refund(next(_ids), sid, [(1, "MUG", 1, "cancel")])
    await refunded(store, part)
    assert await counters(store, "MUG") == (3, 2, 0)
    rest = refund(next(_ids), sid, [(1, "MUG", 2, "cancel")])
    await cancelled(store, order_body(sid, lines, refunds=[part, rest]))
    await refunded(store, rest)          # its own delivery, after the cancel
    await cancelled(store, order_body(sid, lines, refunds=[part, rest]))   # a second cancel event
    assert await counters(store, "MUG") == (5, 0, 0)
    order = await store.order(f"shp_{sid}")
    assert (order.lines[0].cancelled, order.status.value) == (3, "cancelled")


async def test_refunds_by_restock_type(store):
    await stock(store, "MUG", 10)
    sid = next(_ids)
    await create(store, order_body(sid, [(1, "MUG", 6)]))
    await store.run(ShipOrder(order_id=f"shp_{sid}", shipment={"id": "shp1", "method": "parcel"},
                              lines=(SkuQty(sku="MUG", qty=4),)), op())
    [inv] = await store.inventory(["MUG"])
    assert (inv.on_hand, inv.reserved, inv.available) == (6, 2, 4)
    # legacy_restock: 2 unshipped released, then 1 shipped returned with restock
    await refunded(store, refund(next(_ids), sid, [(1, "MUG", 3, "legacy_restock")]))
    # no_restock on shipped units: a return written off; return: back on hand
    await refunded(store, refund(next(_ids), sid, [(1, "MUG", 1, "no_restock")]))
    await refunded(store, refund(next(_ids), sid, [(1, "MUG", 1, "return")]))
    # cancel on a line with nothing unshipped left: nothing more moves
    await refunded(store, refund(next(_ids), sid, [(1, "MUG", 1, "cancel")]))
    order = await store.order(f"shp_{sid}")
    line = order.lines[0]
    assert (line.reserved, line.cancelled, line.shipped, line.returned) == (0, 2, 4, 3)
    assert [(r["lines"][0]["quantity"], r["lines"][0]["restock"]) for r in order.returns] == [
        (1, True), (1, False), (1, True)]
    [inv] = await store.inventory(["MUG"])
    assert (inv.on_hand, inv.reserved, inv.available) == (8, 0, 8)


async def test_missing_order_is_reported_without_writing_unless_told_to_keep_it(store):
    sid = next(_ids)
    command = shopify.refund_command(delivery("refunds/create"), msgspec.json.encode(
        refund(next(_ids), sid, [(1, "MUG", 1, "cancel")])), record_ttl_ms=TTL_MS)
    outbox = await store.redis.xlen(store.keys.outbox)
    with pytest.raises(NotFound):
        await store.run(command, op())
    assert await store.redis.xlen(store.keys.outbox) == outbox
    assert not [k async for k in store.redis.scan_iter(match=f"{store.keys.prefix}:wh:*", count=5000)]


async def test_intake_counts_shopify_movements_for_synced_skus(store):
    await stock(store, "MUG", 10)
    sync_key = f"{store.keys.prefix}:sy:MUG"
    await store.redis.hset(sync_key, mapping={"p": 10, "o": 0, "w": 0, "g": 1})
    sid = next(_ids)
    await create(store, order_body(sid, [(1, "MUG", 3), (2, "UNSYNCED", 1)]), hold_ms=60_000)
    assert int(await store.redis.hget(sync_key, "w")) == 3
    # the sale is held back from Shopify until the API releases it (or the hold ends)
    held = await store.redis.zrange(f"{store.keys.prefix}:syr:MUG", 0, -1, withscores=True)
    assert held == [(f"{sid}:3".encode(), 1_800_000_000_000 + 60_000)]
    assert not await store.redis.exists(f"{store.keys.prefix}:syr:UNSYNCED")
    await refunded(store, refund(next(_ids), sid, [(1, "MUG", 2, "cancel")]))
    assert int(await store.redis.hget(sync_key, "w")) == 1
    assert await store.redis.sismember(store.keys.dirty, "MUG")


async def test_uninstall_sets_the_flag_and_keeps_everything(store):
    await stock(store, "MUG", 3)
    command = shopify.uninstall_command(delivery("app/uninstalled"), b"{}", record_ttl_ms=TTL_MS)
    data = (await store.run(command, op())).data
    assert data["uninstalled"] is True
    assert await store.redis.get(f"{store.keys.prefix}:shopify:app") == b"uninstalled"
    assert await counters(store, "MUG") == (3, 0, 0)
