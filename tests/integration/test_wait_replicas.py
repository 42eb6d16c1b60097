"""ONHAND_REDIS_WAIT_REPLICAS: a write is acknowledged only once the replica has it."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from engine.commands import Op, PutSku, ReceiveStock, SkuQty
from engine.errors import NotReady
from engine.store import Store
from onhand.embedded import start_valkey
from tests.servers import own_dir, remove_dir


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_writes_wait_for_the_replica_and_refuse_without_it():
    primary_dir, replica_dir = own_dir("primary"), own_dir("replica")
    port = _port()
    primary = start_valkey(primary_dir, extra_args=["--port", str(port), "--bind", "127.0.0.1"])
    replica = start_valkey(replica_dir, extra_args=["--replicaof", "127.0.0.1", str(port)])
    try:
        sync_replica = Redis.from_url(replica.url)
        deadline = time.monotonic() + 20
        while sync_replica.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "replica never synced"
            time.sleep(0.1)

        async def run() -> None:
            redis = AsyncRedis.from_url(primary.url)
            store = Store(redis, "waitrep", wait_replicas=1, wait_timeout_ms=500)
            await store.start()
            await redis.set(store.keys.epoch, "test")
            op = Op(op_id="w1", now_ms=1_800_000_000_000, actor="test")
            await store.run(PutSku(sku="W"), op)
            await store.run(ReceiveStock(receipt_id="r1", lines=(SkuQty(sku="W", qty=7),)), op)
            # acknowledged means the replica has it already
            assert sync_replica.hget(store.keys.sku("W"), "oh") == b"7"
            # without the replica, a write is not acknowledged: the answer is
            # "not ready", though the change was made on the primary (Redis
            # cannot take it back), with its outcome stored for a retry
            replica.stop()
            keyed = Op(op_id="w2", now_ms=1_800_000_000_000, actor="test", fingerprint="f",
                       idempotency_ttl_ms=60_000)
            with pytest.raises(NotReady, match="replicas confirmed") as refused:
                await store.run(ReceiveStock(receipt_id="r2", lines=(SkuQty(sku="W", qty=1),)), keyed)
            assert refused.value.reason == "replicas_unconfirmed"
            assert await redis.hget(store.keys.sku("W"), "oh") == b"8"
            # the retry (same operation id) answers the stored outcome, once
            # a replica confirms it
            store.wait_replicas = 0
            again = await store.run(ReceiveStock(receipt_id="r2", lines=(SkuQty(sku="W", qty=1),)), keyed)
            assert again.replayed and again.data["receipt"]["id"] == "r2"
            assert await redis.hget(store.keys.sku("W"), "oh") == b"8"
            await redis.aclose()

        asyncio.run(run())
        sync_replica.close()
    finally:
        replica.stop()
        primary.stop()
        remove_dir(primary_dir)
        remove_dir(replica_dir)
