"""What the request handlers need, created in the app's lifespan (never at
import) and handed to handlers through dependency injection.

:class:`Shared` is the deployment's: connections, settings, the key
authenticator, the rate limiter, the merchant directory. A request works for
one merchant (the one its API key, its Shopify shop or its staff session
belongs to); :class:`Services` is what its handler gets: the shared parts
plus the store and readers bound to that merchant, so nothing a handler
does can reach another merchant's keys or rows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import Authenticator
from api.merchants import MerchantDirectory
from api.operations import Operations
from api.ratelimit import RateLimiter
from api.reads import OrderReader, RecordReader
from engine.store import Store
from onhand.redis_clients import async_client, is_cluster
from onhand.redis_mux import RedisMux
from onhand.settings import Settings

#: Merchants whose bound services are kept ready per process (least recently used go).
TENANT_CACHE = 10_000

#: Builds the reservation engine behind the API for one merchant from the
#: Redis client and the settings. The product's is :func:`onhand_store`;
#: benchmarks plug in their own (loadtests/baseline.py) through
#: ``create_app(store_factory=...)``.
StoreFactory = Callable[[Redis, Settings, str], Any]


def onhand_store(redis: Redis, settings: Settings, merchant: str) -> Store:
    return Store(redis, merchant, fill_limit=settings.fill_limit,
                 wait_replicas=settings.redis_wait_replicas)


@dataclass
class Services:
    """One merchant's view of the deployment (what a handler is given)."""

    shared: "Shared"
    #: The deployment's settings with this merchant's id, name and Shopify channel.
    settings: Settings
    store: Store
    reader: OrderReader
    records: RecordReader
    operations: Operations
    #: the Shopify intake's releases of held-back sales (api/webhooks.py), made on first use
    sale_releases: Any = field(default=None, compare=False, repr=False)

    @property
    def merchant(self) -> str:
        return self.store.keys.merchant

    @property
    def redis(self) -> Redis:
        return self.shared.redis

    @property
    def pg(self) -> AsyncEngine | None:
        return self.shared.pg

    @property
    def authenticator(self) -> Authenticator:
        return self.shared.authenticator

    @property
    def limiter(self) -> RateLimiter:
        return self.shared.limiter

    @property
    def merchants(self) -> MerchantDirectory:
        return self.shared.merchants


@dataclass
class Shared:
    settings: Settings
    redis: Redis
    pg: AsyncEngine | None
    authenticator: Authenticator
    limiter: RateLimiter
    merchants: MerchantDirectory
    store_factory: StoreFactory
    _tenants: "OrderedDict[str, Services]"
    #: the hot path's commands on one shared connection, standalone Redis only
    #: (None on a cluster: redis-py's cluster client routes those)
    mux: RedisMux | None = None

    @classmethod
    async def open(cls, settings: Settings, store_factory: StoreFactory = onhand_store) -> "Shared":
        from persistence.db import make_async_engine

        redis = async_client(settings.redis_url, pool_size=settings.redis_pool_size, health_check_interval=30)
        pg = make_async_engine(settings.database_url) if settings.database_url else None
        shared = cls(
            settings=settings, redis=redis, pg=pg,
            authenticator=Authenticator(redis, settings.merchant, settings.admin_key),
            limiter=RateLimiter(redis, wholesale_per_s=settings.rate_limit_wholesale,
                                staff_per_s=settings.rate_limit_staff),
            merchants=MerchantDirectory(redis, settings),
            store_factory=store_factory, _tenants=OrderedDict(),
            mux=None if is_cluster(settings.redis_url) else RedisMux(redis),
        )
        await (await shared.for_merchant(settings.merchant)).store.start()
        shared.authenticator.start()
        return shared

    async def for_merchant(self, merchant: str) -> Services:
        """The services bound to ``merchant`` (made once, kept while used;
        made again when the merchant's settings changed)."""
        settings = await self.merchants.settings_for(merchant)
        tenant = self._tenants.get(merchant)
        if tenant is None or tenant.settings is not settings:
            store = self.store_factory(self.redis, settings, merchant)
            if isinstance(store, Store) and self.mux is not None:
                store.mux = self.mux
            reader = OrderReader(store, self.pg)
            tenant = Services(shared=self, settings=settings, store=store, reader=reader,
                              records=RecordReader(store, reader),
                              operations=Operations(store, settings.idempotency_ttl_s * 1000, self.limiter))
            self._tenants[merchant] = tenant
            if len(self._tenants) > TENANT_CACHE:
                self._tenants.popitem(last=False)
        else:
            self._tenants.move_to_end(merchant)
        return tenant

    async def home(self) -> Services:
        """The deployment's own merchant (ONHAND_MERCHANT): public routes
        that belong to no merchant (health, metrics by token) use it."""
        return await self.for_merchant(self.settings.merchant)

    async def close(self) -> None:
        await self.authenticator.stop()
        if self.mux is not None:
            await self.mux.aclose()
        await self.redis.aclose()
        if self.pg is not None:
            await self.pg.dispose()


async def services_for(request) -> Services:
    """The services of the merchant the request is for: its key's (or staff
    session's); the home merchant's on public routes (a webhook handler picks
    its shop's merchant itself). Handlers get them by dependency injection
    (``services``); the hottest routes call this directly, which costs a
    fraction of Litestar's dependency resolution per request."""
    principal = request.scope.get("user")
    shared: Shared = request.scope["litestar_app"].state.shared
    staff = request.scope.get("ui_user")  # a staff UI session (ui/base.py)
    merchant = (getattr(principal, "merchant", None) or getattr(staff, "merchant_id", None)
                or shared.settings.merchant)
    return await shared.for_merchant(merchant)
