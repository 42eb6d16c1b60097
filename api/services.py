"""What the request handlers need, created in the app's lifespan (never at
import) and handed to handlers through dependency injection."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import Authenticator
from api.operations import Operations
from api.ratelimit import RateLimiter
from api.reads import OrderReader
from engine.store import Store
from onhand.settings import Settings

#: Longest a request waits for a free Redis connection before it is a 503.
REDIS_POOL_WAIT_S = 5.0


@dataclass
class Services:
    settings: Settings
    redis: Redis
    store: Store
    pg: AsyncEngine | None
    reader: OrderReader
    authenticator: Authenticator
    limiter: RateLimiter
    operations: Operations

    @classmethod
    async def open(cls, settings: Settings) -> "Services":
        from persistence.db import make_async_engine

        # A blocking pool: a burst larger than the pool queues for a connection
        # (redis-py's default pool refuses at once with "Too many connections",
        # which a flash sale of a few hundred buyers turned into 503s).
        redis = Redis.from_pool(BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=settings.redis_pool_size, timeout=REDIS_POOL_WAIT_S,
            health_check_interval=30))
        if settings.engine == "baseline":
            # Benchmarks only: the same API over PostgreSQL row locks (loadtests/baseline.py).
            from loadtests.baseline import BaselineStore

            store = BaselineStore(redis, settings.database_url, settings.merchant)
        else:
            store = Store(redis, settings.merchant, fill_limit=settings.fill_limit,
                          wait_replicas=settings.redis_wait_replicas)
        await store.start()
        pg = make_async_engine(settings.database_url) if settings.database_url else None
        return cls(
            settings=settings,
            redis=redis,
            store=store,
            pg=pg,
            reader=OrderReader(store, pg),
            authenticator=Authenticator(redis, store.keys, settings.admin_key),
            limiter=RateLimiter(redis, store.keys, wholesale_per_s=settings.rate_limit_wholesale,
                                staff_per_s=settings.rate_limit_staff),
            operations=Operations(store, settings.idempotency_ttl_s * 1000),
        )

    async def close(self) -> None:
        await self.redis.aclose()
        if self.pg is not None:
            await self.pg.dispose()
