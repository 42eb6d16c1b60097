from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from engine.store import Store
from onhand.embedded import start_valkey
from tests.servers import env_redis_url, new_merchant, own_dir, remove_dir


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = env_redis_url()
    if url:
        yield url
        return
    path = own_dir("valkey")
    server = start_valkey(path, appendfsync="everysec")
    try:
        yield server.url
    finally:
        server.stop()
        remove_dir(path)


async def drop_merchant(redis: Redis, store: Store) -> None:
    async for key in redis.scan_iter(match=store.keys.pattern(), count=1000):
        await redis.unlink(key)


async def ready_store(redis_url: str, **kwargs) -> Store:
    """A Store under a fresh merchant, scripts loaded, epoch written."""
    redis = Redis.from_url(redis_url)
    store = Store(redis, new_merchant(), **kwargs)
    await store.start()
    await redis.set(store.keys.epoch, "test")
    return store


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:
        yield r
