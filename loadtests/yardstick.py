"""The yardstick: the bare stack an onhand order stands on, and nothing else.

Litestar + msgspec decoding a one-line order, one EVALSHA of a Lua
check-and-decrement that appends to a stream, a 201 with a small msgspec
body: what `../shared/notes/performance-facts.md` measured at about
8,000-9,000 requests/s on one granian worker. `onhand bench load` serves it
with the same granian settings as onhand (`granian --factory
loadtests.yardstick:create_yardstick_app`), on its own Redis with AOF
`appendfsync always` (YARDSTICK_REDIS_URL), and reports onhand's
`POST /v1/orders` as a ratio of it.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

import msgspec
from litestar import Litestar, post
from litestar.datastructures import State
from redis.asyncio import Redis

#: KEYS[1] stock counter, KEYS[2] stream; ARGV[1] units. Refuses (0) when
#: short, else decrements, appends the order and answers the units left.
RESERVE = """
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
if left < want then return -1 end
redis.call('DECRBY', KEYS[1], want)
redis.call('XADD', KEYS[2], '*', 'q', ARGV[1])
return left - want
"""


class Line(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    quantity: int


class OrderBody(msgspec.Struct, forbid_unknown_fields=True):
    channel: str
    lines: list[Line]
    customer_id: str | None = None


class Accepted(msgspec.Struct):
    sku: str
    left: int


@post("/v1/orders", status_code=201)
async def place(data: OrderBody, state: State) -> Accepted:
    line = data.lines[0]
    left = await state.reserve(keys=[f"{{y}}:stock:{line.sku}", "{y}:orders"], args=[line.quantity])
    return Accepted(sku=line.sku, left=int(left))


def create_yardstick_app() -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar):
        redis = Redis.from_url(os.environ["YARDSTICK_REDIS_URL"], max_connections=64)
        app.state.redis = redis
        app.state.reserve = redis.register_script(RESERVE)
        try:
            yield
        finally:
            await redis.aclose()

    return Litestar([place], lifespan=[lifespan], logging_config=None, openapi_config=None)
