"""Per-key request rates by role (ONHAND_RATE_LIMIT_WHOLESALE / _STAFF), kept in
Redis so every API process shares the count (lua/rate_limit.lua)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

from api.auth import Principal, Role
from engine.keys import Keys


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        h = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after_s)
        return h


class RateLimiter:
    def __init__(self, redis, *, wholesale_per_s: float, staff_per_s: float):
        self.redis = redis
        self.rates = {Role.WHOLESALE: wholesale_per_s, Role.ADMIN: staff_per_s, Role.OPERATOR: staff_per_s}
        source = resources.files("lua").joinpath("rate_limit.lua").read_text(encoding="utf-8")
        self._script = redis.register_script(source)

    async def check(self, principal: Principal, now_ms: int) -> Verdict | None:
        """None when the role has no limit."""
        rate = self.rates.get(principal.role, 0.0)
        if rate <= 0:
            return None
        burst = max(1, int(math.ceil(rate)))
        interval_ms = 1000.0 / rate
        allowed, remaining, retry_ms, reset_ms = await self._script(
            keys=[f"{Keys(principal.merchant).prefix}:rl:{principal.key_id}"], args=[now_ms, interval_ms, burst])
        return Verdict(bool(allowed), burst, int(remaining), max(1, math.ceil(int(retry_ms) / 1000)),
                       math.ceil(int(reset_ms) / 1000))
