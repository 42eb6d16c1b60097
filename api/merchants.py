"""Which merchant a request is for, and that merchant's settings.

An API key names its merchant (api/auth.py); a Shopify webhook names its
shop, which belongs to one merchant. Each merchant's name and Shopify
settings come from the registry in Redis (persistence/merchants.py), read
into this process and read again at most every :data:`REFRESH_S` seconds or
when a shop is not found (at most once a second), so a merchant created a
moment ago is found within that time. The home merchant's settings are the
environment's.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from onhand.settings import Settings
from persistence.merchants import MerchantRecord, normalize_shop, registry_key, settings_for

#: Longest a change to the registry takes to reach this process, seconds.
REFRESH_S = 10.0
#: Least time between two reads forced by an unknown shop, seconds.
MISS_REFRESH_S = 1.0


class MerchantDirectory:
    def __init__(self, redis: Redis, settings: Settings):
        self.redis = redis
        self.settings = settings
        self._records: dict[str, MerchantRecord] = {}
        self._shops: dict[str, str] = {}
        self._settings: dict[str, Settings] = {}
        self._read_at = float("-inf")

    async def _refresh(self, *, min_age_s: float) -> None:
        if time.monotonic() - self._read_at < min_age_s:
            return
        self._read_at = time.monotonic()
        raw = await self.redis.hgetall(registry_key(self.settings.merchant))
        records = {r.id: r for r in (MerchantRecord.decode(v) for v in raw.values())}
        if records != self._records:
            self._records = records
            self._shops = {normalize_shop(r.shopify["shopify_shop"]): r.id
                           for r in records.values() if r.shopify.get("shopify_shop")}
            self._settings = {}

    async def settings_for(self, merchant: str) -> Settings:
        """The settings a request for ``merchant`` works with: the
        environment's, with the merchant's id, name and Shopify channel."""
        if merchant == self.settings.merchant:
            return self.settings
        await self._refresh(min_age_s=REFRESH_S)
        found = self._settings.get(merchant)
        if found is None:
            found = self._settings[merchant] = settings_for(self.settings, merchant,
                                                            self._records.get(merchant))
        return found

    async def others(self) -> set[str]:
        """The registered merchants other than the home one."""
        await self._refresh(min_age_s=REFRESH_S)
        return set(self._records) - {self.settings.merchant}

    async def known(self, merchant: str) -> bool:
        """Whether ``merchant`` is the home merchant or a registered one (a
        staff login or a session cookie naming any other is refused)."""
        if merchant == self.settings.merchant:
            return True
        await self._refresh(min_age_s=REFRESH_S)
        if merchant not in self._records:
            await self._refresh(min_age_s=MISS_REFRESH_S)
        return merchant in self._records

    async def by_shop(self, domain: str) -> str | None:
        """The merchant whose Shopify shop this is; None when no registered
        merchant has it (the home merchant then answers, with its own checks)."""
        shop = normalize_shop(domain)
        await self._refresh(min_age_s=REFRESH_S)
        if shop not in self._shops:
            await self._refresh(min_age_s=MISS_REFRESH_S)
        return self._shops.get(shop)
