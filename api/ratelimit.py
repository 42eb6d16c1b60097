"""Per-key request rates by role (ONHAND_RATE_LIMIT_WHOLESALE / _STAFF), kept in
Redis so every API process shares the count (lua/rate_limit.lua).

Routes whose writes all go through :class:`api.operations.Operations` take
the request's rate-limit step inside their one FCALL (lib.lua's guard(), same
key and algorithm as rate_limit.lua). The middleware leaves a
:class:`RateState` in the scope for them; a request that ends before its
FCALL (a 400, a 404 of a lookup) is counted when its response starts, and
answered 429 instead when over the limit, so every request is counted once
and an over-limit key is refused whatever its body."""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

from redis.exceptions import NoScriptError

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


def refusal(verdict: Verdict):
    """The 429 of a refused rate-limit step."""
    from api.problems import RATE_LIMITED, ApiProblem

    return ApiProblem(RATE_LIMITED, f"over {verdict.limit} requests per second for this key",
                      headers=verdict.headers(), retry_after_s=verdict.retry_after_s)


def rate_headers(verdict: Verdict | None) -> list[tuple[bytes, bytes]]:
    """The RateLimit-* headers an allowed request's response carries (none without a limit)."""
    if verdict is None or not verdict.allowed:
        return []
    return [(k.lower().encode(), v.encode()) for k, v in verdict.headers().items()]


#: Where the middleware leaves a route's :class:`RateState` in the ASGI scope.
RATE_SCOPE = "onhand.rate"


class RateState:
    """One request's rate-limit step: not taken yet, or its verdict (None
    also when the role has no limit)."""

    __slots__ = ("principal", "taken", "verdict", "in_call")

    def __init__(self, principal: Principal):
        self.principal = principal
        self.taken = False
        self.verdict: Verdict | None = None
        #: True when the verdict came with the request's FCALL (its refusal
        #: is already the response)
        self.in_call = False


class RateLimiter:
    def __init__(self, redis, *, wholesale_per_s: float, staff_per_s: float):
        self.redis = redis
        self.rates = {Role.WHOLESALE: wholesale_per_s, Role.ADMIN: staff_per_s, Role.OPERATOR: staff_per_s}
        source = resources.files("lua").joinpath("rate_limit.lua").read_text(encoding="utf-8")
        self._script = redis.register_script(source)

    def params(self, principal: Principal) -> tuple[str, float, int] | None:
        """(bucket, emission interval ms, burst) for the guard, None without a limit."""
        rate = self.rates.get(principal.role, 0.0)
        if rate <= 0:
            return None
        return principal.key_id, 1000.0 / rate, max(1, int(math.ceil(rate)))

    @staticmethod
    def verdict_of(rate, burst: int) -> Verdict | None:
        """The verdict of the guard's rate answer (engine.store.Rate)."""
        if rate.remaining < 0 and rate.allowed:
            return None
        return Verdict(bool(rate.allowed), burst, int(rate.remaining),
                       max(1, math.ceil(rate.retry_after_ms / 1000)), math.ceil(rate.reset_ms / 1000))

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


async def read_with_rate(scope, limiter: RateLimiter, store, commands: list[tuple], now_ms: int) -> list:
    """One round trip for a read: the request's rate-limit step (when it was
    left to the handler) and the read's ``commands`` on one pipeline
    (Store.pipeline: the hot path's shared connection where there is one).
    Raises the 429 when over the limit (the read was made and is dropped).
    Returns the read's replies (an error reply raised)."""
    state: RateState | None = scope.get(RATE_SCOPE)
    principal = state.principal if state is not None and not state.taken else None
    rate = limiter.rates.get(principal.role, 0.0) if principal is not None else 0.0
    burst = max(1, int(math.ceil(rate))) if rate > 0 else 0
    head = []
    if rate > 0:
        # EVALSHA by hand: a registered script on a pipeline costs a SCRIPT
        # EXISTS round trip on every execute
        head = [("EVALSHA", limiter._script.sha, 1, f"{Keys(principal.merchant).prefix}:rl:{principal.key_id}",
                 now_ms, 1000.0 / rate, burst)]
    replies = await store.pipeline(head + commands)
    if head and isinstance(replies[0], NoScriptError):  # a new or emptied Redis: load it, once more
        await limiter.redis.script_load(limiter._script.script)
        replies = await store.pipeline(head + commands)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    if principal is None:
        return replies
    state.taken = True
    if rate <= 0:
        return replies
    allowed, remaining, retry_ms, reset_ms = replies[0]
    state.verdict = Verdict(bool(allowed), burst, int(remaining), max(1, math.ceil(int(retry_ms) / 1000)),
                            math.ceil(int(reset_ms) / 1000))
    if not allowed:
        state.in_call = True
        raise refusal(state.verdict)
    return replies[1:]
