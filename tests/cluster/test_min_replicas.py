"""A primary configured with min-replicas-to-write that has lost its
replicas refuses writes (NOREPLICAS): the store answers "not ready" (the
API's 503 with Retry-After), never an error, and wrote nothing."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from engine.commands import Op, PutSku
from engine.errors import NotReady
from engine.store import Store
from onhand.embedded import start_valkey
from tests.servers import own_dir, remove_dir


def test_a_primary_without_its_replicas_answers_not_ready():
    path = own_dir("noreplicas")
    server = start_valkey(path)
    try:
        async def run() -> None:
            redis = Redis.from_url(server.url)
            store = Store(redis, "m1")
            await store.start()  # loaded while it still took writes
            await redis.config_set("min-replicas-to-write", 1)
            with pytest.raises(NotReady) as caught:
                await store.run(PutSku(sku="A"), Op(op_id="o1", now_ms=int(time.time() * 1000), actor="t"))
            assert "replicas" in caught.value.detail
            assert not await redis.exists(store.keys.sku("A"))
            await redis.aclose()

        asyncio.run(run())
    finally:
        server.stop()
        remove_dir(path)
