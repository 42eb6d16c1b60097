"""Scripts fed bad arguments refuse before writing anything.

The commands go to Redis as raw ARGV, bypassing every Python-side check, and
the test compares a dump of all the merchant's keys before and after.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis

from engine import scripts
from engine.commands import OrderLineRequest, Op, PlaceOrder, PutSku, ReceiveStock, SkuQty
from tests.conftest import drop_merchant, ready_store

NOW = 1_800_000_000_000

GOOD_LINE = {"sku": "A", "qty": 1}
BAD_COMMANDS = {
    "reserve": [
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [{"sku": "A", "qty": -1}]},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [{"sku": "A", "qty": 0}]},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [{"sku": "A", "qty": 1e12}]},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [{"sku": "A", "qty": 1.5}]},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [{"sku": "A", "qty": "2"}]},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [{"qty": 1}]},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [{"sku": "", "qty": 1}]},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [{"sku": ".A", "qty": 1}]},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [{"sku": "A" * 65, "qty": 1}]},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [{"sku": "NOPE", "qty": 1}]},
        {"order_id": "o1", "channel": "dtc", "policy": "whenever", "lines": [GOOD_LINE]},
        {"order_id": "o1", "channel": "wholesale", "policy": "accept", "lines": [GOOD_LINE]},
        {"order_id": "o1", "channel": "retail", "policy": "backorder", "lines": [GOOD_LINE]},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [GOOD_LINE] * 501},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": []},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": {"sku": "A"}},
        {"order_id": "o 1", "channel": "dtc", "policy": "backorder", "lines": [GOOD_LINE]},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [GOOD_LINE, {"sku": "A", "qty": -5}]},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [GOOD_LINE], "doc": 5},
        {"order_id": "o1", "channel": "dtc", "policy": "backorder", "lines": [GOOD_LINE], "unknown_sku": "x"},
    ],
    "receive": [
        {"receipt_id": "r1", "lines": [{"sku": "A", "qty": -3}]},
        {"receipt_id": "r1", "lines": [{"sku": "A", "qty": 2}, {"sku": "A", "qty": 0.5}]},
        {"receipt_id": "r1", "lines": [{"sku": "A", "qty": 2}, {"sku": "NOPE", "qty": 1}]},
        {"receipt_id": "r1", "reference": "", "lines": [{"sku": "A", "qty": 2}]},
        {"lines": [{"sku": "A", "qty": 2}]},
    ],
    "count": [
        {"sku": "A", "mode": "count", "on_hand": -1, "reason": "count"},
        {"sku": "A", "mode": "count", "on_hand": 5, "reason": "theft"},
        {"sku": "A", "mode": "adjust", "delta": 0, "reason": "count"},
        {"sku": "A", "mode": "adjust", "delta": 2e9, "reason": "count"},
        {"sku": "A", "mode": "sideways", "delta": 2, "reason": "count"},
        {"sku": "NOPE", "mode": "count", "on_hand": 5, "reason": "count"},
    ],
    "cancel": [
        {"order_id": "o-existing", "lines": [{"sku": "A", "qty": -1}]},
        {"order_id": "o-existing", "lines": []},
        {"order_id": "nope"},
    ],
    "ship": [
        {"order_id": "o-existing", "shipment": "{}", "lines": [{"sku": "A", "qty": 1}]},
        {"order_id": "o-existing", "shipment": "not json", "lines": [{"sku": "A", "qty": 1}]},
        {"order_id": "o-existing", "shipment": "{\"id\": \"s1\"}", "lines": [{"sku": "A", "qty": 0}]},
        {"order_id": "o-existing", "shipment": "{\"id\": \"s1\", \"cartons\": []}", "lines": [{"sku": "A", "qty": 1}],
         "sscc_prefix": "00712161"},
        {"order_id": "o-existing", "shipment": "{\"id\": \"s1\", \"cartons\": [{\"pallet\": 0}]}",
         "lines": [{"sku": "A", "qty": 1}], "sscc_prefix": "00712161"},
        {"order_id": "o-existing", "shipment": "{\"id\": \"s1\", \"cartons\": [{\"lines\": []}]}",
         "lines": [{"sku": "A", "qty": 1}], "sscc_prefix": "12ab"},
    ],
    "restock": [
        {"return_id": "x1", "order_id": "o-existing", "lines": [{"sku": "A", "qty": 1, "restock": "yes"}]},
        {"return_id": "x1", "order_id": "o-existing", "lines": [{"sku": "A", "qty": -1, "restock": True}]},
    ],
    "sku_put": [
        {"sku": ".hidden"},
        {"sku": "B", "dtc_reserve": -1},
        {"sku": "B", "meta": {"case_pack": 0}},
        {"sku": "B", "meta": {"colour": "red"}},
    ],
}


async def _dump(redis: Redis, pattern: str) -> dict[bytes, bytes]:
    keys = sorted([k async for k in redis.scan_iter(match=pattern, count=1000)])
    return {k: await redis.dump(k) for k in keys}


async def _bad_arguments(redis_url: str) -> None:
    store = await ready_store(redis_url)
    redis = store.redis
    op = Op(op_id="setup", now_ms=NOW, actor="test")
    try:
        await store.run(PutSku(sku="A"), op)
        await store.run(ReceiveStock(receipt_id="r0", lines=(SkuQty(sku="A", qty=5),)), op)
        await store.run(PlaceOrder(order_id="o-existing", channel="dtc", policy="backorder",
                                   lines=(OrderLineRequest(sku="A", qty=2),)), op)
        before = await _dump(redis, store.keys.pattern())
        for name, commands in BAD_COMMANDS.items():
            for i, command in enumerate(commands):
                argv = [f"bad-{name}-{i}", "fp", 60_000, NOW, "test", json.dumps(command), 1000]
                data, _, _, _ = await store._eval(name, argv)
                assert data["c"] in ("invalid", "not_found"), (name, command, data)
        # Bad common arguments, for every stock script.
        for name in scripts.NAMES:
            if name in scripts.STANDALONE:
                continue
            for argv in (
                ["", "fp", 0, NOW, "t", "{}", 1000],
                ["op", "fp", -5, NOW, "t", "{}", 1000],
                ["op", "fp", 0, "soon", "t", "{}", 1000],
                ["op", "fp", 0, NOW, "t", "{}", 0],
                ["op", "fp", 0, NOW, "t", "not json", 1000],
                ["op", "fp", 0, NOW, "t", "[1, 2]", 1000],
            ):
                data, _, _, _ = await store._eval(name, argv)
                assert data["c"] in ("invalid", "not_found"), (name, argv, data)
        assert await _dump(redis, store.keys.pattern()) == before
    finally:
        await drop_merchant(redis, store)
        await redis.aclose()


def test_bad_arguments_change_nothing(redis_url):
    asyncio.run(_bad_arguments(redis_url))


async def _not_ready(redis_url: str) -> None:
    store = await ready_store(redis_url)
    try:
        await store.run(PutSku(sku="A"), Op(op_id="a", now_ms=NOW, actor="t"))
        await store.redis.delete(store.keys.epoch)
        before = await _dump(store.redis, store.keys.pattern())
        from engine.errors import NotReady

        with pytest.raises(NotReady):
            await store.run(ReceiveStock(receipt_id="r", lines=(SkuQty(sku="A", qty=1),)),
                            Op(op_id="b", now_ms=NOW, actor="t"))
        assert await _dump(store.redis, store.keys.pattern()) == before
    finally:
        await drop_merchant(store.redis, store)
        await store.redis.aclose()


def test_scripts_refuse_without_epoch(redis_url):
    asyncio.run(_not_ready(redis_url))


async def _idempotency_expires(redis_url: str) -> None:
    store = await ready_store(redis_url)
    try:
        await store.run(PutSku(sku="A"), Op(op_id="x", now_ms=NOW, actor="t"))
        for ttl_ms in (72 * 3600 * 1000, 5000):
            op = Op(op_id=f"k{ttl_ms}", now_ms=NOW, actor="t", fingerprint="f", idempotency_ttl_ms=ttl_ms)
            await store.run(ReceiveStock(receipt_id=f"r{ttl_ms}", lines=(SkuQty(sku="A", qty=1),)), op)
            pttl = await store.redis.pttl(store.keys.idempotency(op.op_id))
            assert ttl_ms - 5000 < pttl <= ttl_ms
        await store.redis.pexpire(store.keys.idempotency("k5000"), 50)
        await asyncio.sleep(0.2)
        assert not await store.redis.exists(store.keys.idempotency("k5000"))
    finally:
        await drop_merchant(store.redis, store)
        await store.redis.aclose()


def test_idempotency_records_expire_on_their_own(redis_url):
    asyncio.run(_idempotency_expires(redis_url))
