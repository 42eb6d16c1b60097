"""The outbox's way into PostgreSQL: applying an event twice changes nothing,
the result does not depend on the order batches commit in, and an entry that
keeps failing is dead-lettered without stopping the others."""

from __future__ import annotations

import asyncio
import random
import time

import msgspec
import pytest
from redis import Redis
from sqlalchemy import create_engine, select, text

from engine.commands import (
    CancelOrder,
    Op,
    OrderLineRequest,
    PlaceOrder,
    PutSku,
    ReceiveStock,
    ShipOrder,
    SkuQty,
)
from engine.keys import Keys
from persistence.apply import OutboxEntry, apply_batch
from persistence.models import DeadLetter
from tests.conftest import drop_merchant, ready_store
from workers.outbox import GROUP, MAX_FAILURES, Drainer, ensure_group, stats_key


def _op(n) -> Op:
    return Op(op_id=f"x-{n}-{time.monotonic_ns()}", now_ms=1_800_000_000_000 + n, actor="test")


async def _history(redis_url: str) -> tuple[str, list[OutboxEntry]]:
    """A realistic stream: SKUs, receipts, orders under several policies,
    fills, shipments, cancels. Returns the merchant and its outbox entries."""
    store = await ready_store(redis_url)
    rng = random.Random(5)
    skus = ["A", "B", "C"]
    for s in skus:
        await store.run(PutSku(sku=s, dtc_reserve=1), _op(0))
    await store.run(ReceiveStock(receipt_id="r0", lines=tuple(SkuQty(sku=s, qty=5) for s in skus)), _op(1))
    orders = []
    for n in range(40):
        oid = f"o{n}"
        lines = tuple(OrderLineRequest(sku=s, qty=rng.randint(1, 3)) for s in rng.sample(skus, rng.randint(1, 3)))
        await store.run(PlaceOrder(order_id=oid, channel=rng.choice(["dtc", "wholesale"]), policy="backorder",
                                   lines=lines), _op(n))
        orders.append(oid)
        if n % 7 == 3:
            await store.run(ReceiveStock(receipt_id=f"r{n}", lines=(SkuQty(sku=rng.choice(skus), qty=4),)), _op(n))
        if n % 9 == 5:
            try:
                await store.run(CancelOrder(order_id=rng.choice(orders)), _op(n))
            except Exception:  # noqa: BLE001 - nothing left to cancel
                pass
    for oid in orders[:10]:
        order = await store.order(oid)
        for line in order.lines:
            if line.reserved:
                await store.run(ShipOrder(order_id=oid, shipment={"id": f"s{oid}{line.sku}", "method": "parcel"},
                                          lines=(SkuQty(sku=line.sku, qty=line.reserved),)), _op(99))
    raw = await store.redis.xrange(store.keys.outbox)
    merchant = store.keys.merchant
    await store.redis.aclose()
    return merchant, [OutboxEntry.from_stream(eid, fields) for eid, fields in raw]


def _state(engine) -> dict:
    with engine.connect() as conn:
        return {
            "skus": conn.execute(text(
                "select sku, on_hand, reserved_dtc, reserved_wholesale, backordered_dtc, "
                "backordered_wholesale, exception, dtc_reserve, version from skus order by sku")).all(),
            "orders": conn.execute(text(
                "select id, status, version, shipments from orders order by id")).all(),
            "lines": conn.execute(text("select * from order_lines order by order_id, idx")).all(),
            "ledger": conn.execute(text(
                "select event_id, idx, sku, order_id, reason, d_on_hand, d_reserved_dtc, "
                "d_reserved_wholesale from inventory_ledger order by event_id, idx")).all(),
            "shipments": conn.execute(text("select id, order_id from shipments order by id")).all(),
            "applied": conn.execute(text("select count(*) from applied_events")).scalar(),
        }


def test_applying_twice_and_in_any_order_gives_the_same_state(redis_url, pg_server_url, database_url):
    merchant, entries = asyncio.run(_history(redis_url))
    assert len(entries) > 60
    # Given the batches applied once, in order
    in_order = create_engine(database_url)
    with in_order.begin() as conn:
        for i in range(0, len(entries), 7):
            apply_batch(conn, entries[i:i + 7], merchant)
    expected = _state(in_order)
    assert expected["applied"] == len(entries)
    # When the same entries are applied in shuffled batches, each several times
    with in_order.begin() as conn:
        conn.execute(text("truncate skus, orders, order_lines, inventory_ledger, shipments, returns, "
                          "receipts, applied_events, idempotency_records cascade"))
    rng = random.Random(11)
    for _ in range(3):
        shuffled = entries[:]
        rng.shuffle(shuffled)
        for i in range(0, len(shuffled), 5):
            with in_order.begin() as conn:
                apply_batch(conn, shuffled[i:i + 5], merchant)
    # Then PostgreSQL holds exactly the same state
    assert _state(in_order) == expected
    in_order.dispose()
    Redis.from_url(redis_url).close()


def test_an_entry_that_keeps_failing_is_dead_lettered_and_others_go_on(redis_url, database_url, runner):
    store = runner.run(ready_store(redis_url))
    keys = store.keys
    redis = Redis.from_url(redis_url)
    engine = create_engine(database_url)
    try:
        runner.run(store.run(PutSku(sku="DL"), _op(1)))
        # a poison entry: valid JSON, but an order snapshot PostgreSQL cannot take
        poison = {"t": "order.accepted", "op": "poison", "at": 1_800_000_000_000, "actor": "test",
                  "skus": [], "ledger": [], "orders": [{"id": "bad", "v": 1}]}
        poison_id = redis.xadd(keys.outbox, {"e": msgspec.json.encode(poison)}).decode()
        runner.run(store.run(PutSku(sku="DL2"), _op(2)))
        ensure_group(redis, keys)
        drainer = Drainer(redis, engine, keys, slot=0)
        for _ in range(MAX_FAILURES + 2):
            drainer.run_for(0.3)
            if redis.xlen(keys.outbox) == 0:
                break
        assert redis.xlen(keys.outbox) == 0
        assert redis.xpending(keys.outbox, GROUP)["pending"] == 0
        with engine.connect() as conn:
            letters = conn.execute(select(DeadLetter.event_id, DeadLetter.failures)).all()
            skus = conn.execute(text("select sku from skus order by sku")).scalars().all()
        assert letters == [(poison_id, MAX_FAILURES)]
        assert skus == ["DL", "DL2"]  # the good entries went through
        assert int(redis.hget(stats_key(keys), "dead_letters")) == 1
    finally:
        runner.run(drop_merchant(store.redis, store))
        runner.run(store.redis.aclose())
        redis.close()
        engine.dispose()
