"""A whole onhand for a test: the real app (in process, over ASGI), real
Dramatiq worker threads draining into a real PostgreSQL, a real Redis."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgspec
from litestar.testing import AsyncTestClient
from redis import Redis
from sqlalchemy import create_engine

from api.app import create_app
from engine.keys import Keys
from onhand.settings import Settings
from persistence.rebuild import Rebuilder
from tests.servers import new_merchant
from workers.runtime import WorkerProcess

ADMIN_KEY = "test-admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class Stack:
    settings: Settings
    client: AsyncTestClient
    worker: WorkerProcess | None
    redis: Redis
    keys: Keys

    async def drained(self, timeout_s: float = 30.0) -> None:
        """Waits until the outbox is empty (every change is in PostgreSQL)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.redis.xlen(self.keys.outbox) == 0:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"outbox still holds {self.redis.xlen(self.keys.outbox)} entries")

    async def post(self, path: str, body, headers=None, **kw):
        return await self.client.post(path, content=msgspec.json.encode(body),
                                      headers={**ADMIN, "content-type": "application/json", **(headers or {})},
                                      **kw)

    async def put(self, path: str, body, headers=None):
        return await self.client.put(path, content=msgspec.json.encode(body),
                                     headers={**ADMIN, "content-type": "application/json", **(headers or {})})

    async def get(self, path: str, headers=None, **kw):
        return await self.client.get(path, headers={**ADMIN, **(headers or {})}, **kw)


def stack_settings(redis_url: str, database_url: str, **overrides) -> Settings:
    base = dict(redis_url=redis_url, database_url=database_url, merchant=new_merchant(),
                admin_key=ADMIN_KEY, allow_unsafe_redis=True, rate_limit_wholesale=0.0)
    base.update(overrides)
    return Settings(**base)


def initialise(settings: Settings) -> None:
    """What `serve` does before serving: an empty Redis is rebuilt (here: from
    an empty database), which writes the epoch."""
    redis = Redis.from_url(settings.redis_url)
    engine = create_engine(settings.database_url)
    try:
        Rebuilder(redis, engine, Keys(settings.merchant)).run()
    finally:
        engine.dispose()
        redis.close()


def cleanup(settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        for pattern in (Keys(settings.merchant).pattern(), f"onhand-{settings.merchant}*"):
            keys = list(redis.scan_iter(match=pattern, count=2000))
            for i in range(0, len(keys), 1000):
                redis.unlink(*keys[i:i + 1000])
    finally:
        redis.close()


@asynccontextmanager
async def running_stack(redis_url: str, database_url: str, *, workers: bool = True, **overrides):
    settings = stack_settings(redis_url, database_url, **overrides)
    initialise(settings)
    worker = None
    redis = Redis.from_url(settings.redis_url)
    try:
        async with AsyncTestClient(create_app(settings), timeout=60) as client:
            if workers:
                worker = WorkerProcess(settings, threads=3)
                worker.start()
            try:
                yield Stack(settings, client, worker, redis, Keys(settings.merchant))
            finally:
                if worker is not None:
                    worker.stop()
    finally:
        redis.close()
        cleanup(settings)
