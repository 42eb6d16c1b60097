"""Crashes of every part: workers, Redis, PostgreSQL (real processes, kill -9).

Long versions run under the `soak` marker.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

import msgspec
import pytest
from redis import Redis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import create_engine, func, select, text

from engine.commands import Op, OrderLineRequest, PlaceOrder, PutSku, ReceiveStock, SkuQty
from engine.errors import InsufficientStock, NotReady
from engine.keys import Keys
from engine.store import Store
from onhand.embedded import start_valkey
from persistence.db import make_engine
from persistence.models import AppliedEvent, LedgerEntry, Order
from persistence.reconcile import reconcile
from tests.harness import cleanup, initialise, stack_settings
from tests.procs import worker
from tests.servers import new_merchant, own_dir, rabbitmq_queue_exists, remove_dir
from workers.brokers import namespace, queue_name
from workers.outbox import GROUP, stats_key

SKUS = [f"D-{i:02d}" for i in range(20)]


def _op(n: int | str) -> Op:
    return Op(op_id=f"d-{n}-{uuid.uuid4().hex[:8]}", now_ms=int(time.time() * 1000), actor="durability")


async def _stock(store: Store, units: int = 10**6) -> None:
    for sku in SKUS:
        await store.run(PutSku(sku=sku), _op("sku"))
    await store.run(ReceiveStock(receipt_id="stock", lines=tuple(SkuQty(sku=s, qty=units) for s in SKUS)),
                    _op("stock"))


async def _order_stream(store: Store, seconds: float, acked: list[str], clients: int = 16) -> int:
    """Sends orders until `seconds` pass; records each acknowledged order id.
    Returns how many calls failed (e.g. while Redis was down)."""
    deadline = time.monotonic() + seconds
    failed = 0

    async def client(c: int) -> None:
        nonlocal failed
        rng = random.Random(c)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            oid = f"o{c}x{n}x{uuid.uuid4().hex[:6]}"
            lines = tuple(OrderLineRequest(sku=s, qty=rng.randint(1, 3))
                          for s in rng.sample(SKUS, rng.choice([1, 1, 2, 4])))
            try:
                await store.run(PlaceOrder(order_id=oid, channel=rng.choice(["dtc", "wholesale"]),
                                           policy="backorder", lines=lines), _op(n))
                acked.append(oid)
            except (NotReady, InsufficientStock):
                failed += 1
                await asyncio.sleep(0.05)

    await asyncio.gather(*(client(c) for c in range(clients)))
    return failed


def _wait_drained(redis: Redis, keys: Keys, stalled_s: float = 60) -> None:
    """Waits for the outbox to empty, as long as it keeps shrinking: the
    backlog a long run leaves on a busy machine takes a while to drain."""
    least, deadline = None, time.monotonic() + stalled_s
    while time.monotonic() < deadline:
        backlog = redis.xlen(keys.outbox)
        pending = redis.xpending(keys.outbox, GROUP)["pending"] if redis.exists(keys.outbox) else 0
        if backlog == 0 and pending == 0:
            return
        if least is None or backlog < least:
            least, deadline = backlog, time.monotonic() + stalled_s
        time.sleep(0.2)
    raise TimeoutError(f"outbox not drained: {redis.xlen(keys.outbox)} entries, none drained in {stalled_s} s")


def _worker_kills(redis_url, database_url, broker_url, tmp_path: Path, seconds: float) -> None:
    # Given two worker processes draining the outbox of a busy order stream,
    # their messages on the Redis broker or on RabbitMQ
    settings = stack_settings(redis_url, database_url, broker_url=broker_url)
    initialise(settings)
    keys = Keys(settings.merchant)
    redis = Redis.from_url(redis_url)
    workers = [worker(settings, tmp_path / f"worker{i}.log") for i in range(2)]
    for w in workers:
        w.start()
    acked: list[str] = []
    kills = 0

    async def run() -> None:
        nonlocal kills
        store = Store(AsyncRedis(connection_pool=BlockingConnectionPool.from_url(redis_url, max_connections=32)),
                      settings.merchant)
        await store.start()
        await _stock(store)
        stream = asyncio.create_task(_order_stream(store, seconds, acked))
        rng = random.Random(7)
        # When a worker is killed with SIGKILL every couple of seconds (and restarted)
        while not stream.done():
            await asyncio.sleep(rng.uniform(1.0, 2.5))
            if stream.done():
                break
            victim = rng.choice(workers)
            victim.kill9()
            kills += 1
            victim.start()
        await stream
        await store.redis.aclose()

    try:
        asyncio.run(run())
        # Then, once the backlog drains, every acknowledged order is in PostgreSQL exactly once
        _wait_drained(redis, keys)
        engine = make_engine(database_url)
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(select(Order.id))]
            reserve_rows = conn.execute(
                select(LedgerEntry.order_id, func.count()).where(LedgerEntry.kind == "order.accepted")
                .group_by(LedgerEntry.order_id)).all()
            events = conn.scalar(select(func.count()).select_from(AppliedEvent))
            lines_per_order = dict(conn.execute(text(
                "select order_id, count(*) from order_lines group by order_id")).all())
        assert len(acked) > 500, "the stream must be busy"
        assert sorted(ids) == sorted(acked), "orders missing or extra in PostgreSQL"
        assert len(ids) == len(set(ids))
        assert all(count == lines_per_order[oid] for oid, count in reserve_rows), "a movement doubled"
        assert events == len(acked) + len(SKUS) + 1  # every accepted operation applied once
        # nothing is pending, and the two stores agree
        assert redis.xpending(keys.outbox, GROUP)["pending"] == 0
        result = reconcile(redis, engine, keys, settle_s=1)
        assert result.drifts == [], result.drifts
        # and the crashes really happened: kills, and entries read again after them
        redelivered = int(redis.hget(stats_key(keys), "redelivered") or 0)
        assert kills >= max(3, int(seconds / 4)), kills
        assert redelivered > 0, "no batch was ever interrupted: the test proved nothing"
        print(f"\nworker kills on {'rabbitmq' if broker_url else 'redis'}: {seconds:.0f} s, {kills} kills, "
              f"{len(acked)} orders acknowledged, {len(ids)} in PostgreSQL, {redelivered} entries read again")
        if broker_url:  # and the messages went through RabbitMQ, not the Redis broker
            assert rabbitmq_queue_exists(broker_url, queue_name(settings, "outbox"))
            assert not list(redis.scan_iter(match=f"{namespace(settings)}*"))
        engine.dispose()
    finally:
        for w in workers:
            w.stop()
        redis.close()
        cleanup(settings)


def test_worker_kill_9_during_orders_loses_and_doubles_nothing(redis_url, database_url, broker_url, tmp_path):
    _worker_kills(redis_url, database_url, broker_url, tmp_path, seconds=15)


@pytest.mark.soak
def test_worker_kill_9_during_orders_long(redis_url, database_url, broker_url, tmp_path):
    _worker_kills(redis_url, database_url, broker_url, tmp_path, seconds=60)


def test_redis_kill_9_under_load_loses_no_acknowledged_reservation(tmp_path):
    """Given a Redis with AOF `appendfsync always` under a stream of orders, when
    it is killed with SIGKILL and restarted on the same files, every order it
    acknowledged is still there, with its reservation in the counters."""
    path = own_dir("aof-valkey")
    server = start_valkey(path)  # appendfsync always
    merchant = new_merchant()
    acked: list[str] = []

    async def run() -> int:
        store = Store(AsyncRedis(connection_pool=BlockingConnectionPool.from_url(
            server.url, max_connections=32, socket_timeout=2)), merchant)
        await store.start()
        await store.redis.set(store.keys.epoch, "test")
        await _stock(store)
        stream = asyncio.create_task(_order_stream(store, 6.0, acked))
        await asyncio.sleep(2.5)
        before = len(acked)
        server.kill()  # kill -9 mid-stream
        await asyncio.sleep(0.5)
        restarted = start_valkey(path)
        assert restarted.url == server.url
        failed = await stream
        await store.redis.aclose()
        return before, failed, restarted

    try:
        before, failed, restarted = asyncio.run(run())
        try:
            redis = Redis.from_url(restarted.url)
            keys = Keys(merchant)
            assert before > 100 and failed > 0, "the kill must land mid-stream"
            missing = [oid for oid in acked if not redis.exists(keys.order(oid))]
            assert missing == [], f"{len(missing)} acknowledged orders lost"
            # the counters agree with the orders that exist: the acknowledged
            # ones, plus at most one in flight per client whose reply the kill cut
            present = [k for k in redis.scan_iter(match=keys.order("*"), count=1000)]
            assert len(acked) <= len(present) <= len(acked) + 16
            reserved = {sku: 0 for sku in SKUS}
            for key in present:
                for line in msgspec.json.decode(redis.hget(key, "L")):
                    reserved[line[0]] += line[2]
            for sku in SKUS:
                h = redis.hgetall(keys.sku(sku))
                assert int(h[b"rd"]) + int(h[b"rw"]) == reserved[sku]
            redis.close()
        finally:
            restarted.stop()
    finally:
        server.kill()
        remove_dir(path)
