"""What the request handlers need, created in the app's lifespan (never at
import) and handed to handlers through dependency injection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import Authenticator
from api.operations import Operations
from api.ratelimit import RateLimiter
from api.reads import OrderReader, RecordReader
from engine.store import Store
from onhand.settings import Settings

#: Longest a request waits for a free Redis connection before it is a 503.
REDIS_POOL_WAIT_S = 5.0

#: Builds the reservation engine behind the API from the Redis client and the
#: settings. The product's is :func:`onhand_store`; benchmarks plug in their
#: own (loadtests/baseline.py) through ``create_app(store_factory=...)``.
StoreFactory = Callable[[Redis, Settings], Any]


def onhand_store(redis: Redis, settings: Settings) -> Store:
    return Store(redis, settings.merchant, fill_limit=settings.fill_limit,
                 wait_replicas=settings.redis_wait_replicas)


@dataclass
class Services:
    settings: Settings
    redis: Redis
    store: Store
    pg: AsyncEngine | None
    reader: OrderReader
    records: RecordReader
    authenticator: Authenticator
    limiter: RateLimiter
    operations: Operations

    @classmethod
    async def open(cls, settings: Settings, store_factory: StoreFactory = onhand_store) -> "Services":
        from persistence.db import make_async_engine

        # A blocking pool: a burst larger than the pool queues for a connection
        # (redis-py's default pool refuses at once with "Too many connections",
        # which a flash sale of a few hundred buyers turned into 503s).
        redis = Redis.from_pool(BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=settings.redis_pool_size, timeout=REDIS_POOL_WAIT_S,
            health_check_interval=30))
        store = store_factory(redis, settings)
        await store.start()
        pg = make_async_engine(settings.database_url) if settings.database_url else None
        reader = OrderReader(store, pg)
        return cls(
            settings=settings,
            redis=redis,
            store=store,
            pg=pg,
            reader=reader,
            records=RecordReader(store, reader),
            authenticator=Authenticator(redis, store.keys, settings.admin_key),
            limiter=RateLimiter(redis, store.keys, wholesale_per_s=settings.rate_limit_wholesale,
                                staff_per_s=settings.rate_limit_staff),
            operations=Operations(store, settings.idempotency_ttl_s * 1000),
        )

    async def close(self) -> None:
        await self.redis.aclose()
        if self.pg is not None:
            await self.pg.dispose()
