"""Order, customer and API key reads that see every acknowledged write.

Redis holds every open order and every order changed lately; PostgreSQL holds
everything the outbox has delivered. An order whose newest version is not yet
in PostgreSQL is listed in the ``unsynced`` set, so a read merges the two
without waiting for the outbox: by id, Redis first; in lists, the unsynced
orders from Redis (filtered here) plus PostgreSQL's rows for all the others
(filtered there), newest first. A read that needs PostgreSQL while it is down
answers 503 (the caller sees NotReady); order taking goes on.
"""

from __future__ import annotations

import heapq

from sqlalchemy import exc as sa_errors
from sqlalchemy.ext.asyncio import AsyncEngine

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from engine.errors import NotReady
from engine.model import Order, order_from_snapshot
from engine.store import Store
from persistence import queries
from persistence.queries import OrderFilter


class OrderReader:
    def __init__(self, store: Store, engine: AsyncEngine | None):
        self.store = store
        self.engine = engine

    async def get(self, order_id: str) -> Order | None:
        order = await self.store.order(order_id)
        if order is not None:
            return order
        snap = await self._pg(queries.order_by_id, self.store.keys.merchant, order_id)
        return order_from_snapshot(snap) if snap else None

    async def list(self, f: OrderFilter, *, limit: int, offset: int) -> tuple[list[Order], int]:
        redis, keys = self.store.redis, self.store.keys
        unsynced = sorted(m.decode() for m in await redis.smembers(keys.unsynced))
        want = offset + limit

        async def from_pg(conn):
            total = await queries.count_orders(conn, keys.merchant, f, unsynced)
            rows = await queries.list_orders(conn, keys.merchant, f, unsynced, want)
            return total, [order_from_snapshot(r) for r in rows]

        # PostgreSQL first: while it is down this answers 503 before reading
        # what may be a long backlog of unsynced orders from Redis
        pg_total, older = await self.pg_call(from_pg)
        recent: list[Order] = []
        if unsynced:
            async with redis.pipeline(transaction=False) as pipe:
                for oid in unsynced:
                    pipe.hgetall(keys.order(oid))
                rows = await pipe.execute()
            for oid, row in zip(unsynced, rows, strict=True):
                if not row:
                    continue
                snap = {k.decode(): v.decode() for k, v in row.items()}
                snap["id"] = oid
                order = order_from_snapshot(snap)
                if f.matches(order, order.header):
                    recent.append(order)
        recent.sort(key=lambda o: o.number, reverse=True)
        merged = list(heapq.merge(recent, older, key=lambda o: -o.number))
        return merged[offset:want], pg_total + len(recent)

    async def _pg(self, fn, *args):
        return await self.pg_call(lambda conn: fn(conn, *args))

    async def pg_call(self, fn):
        if self.engine is None:
            raise NotReady("PostgreSQL is not configured")
        try:
            async with self.engine.connect() as conn:
                return await fn(conn)
        except (sa_errors.OperationalError, sa_errors.InterfaceError, OSError) as exc:
            raise NotReady("PostgreSQL is unavailable; order reads by id still work") from exc


_doc = msgspec.json.Decoder()


def _newest_first(doc: dict[str, Any]) -> tuple:
    return (-int(doc.get("created_at_ms") or 0), doc.get("id") or "")


def customer_matches(doc: dict[str, Any], q: str | None) -> bool:
    """The PostgreSQL search's rule (a substring of name, email or phone, any
    case), for a customer read from Redis."""
    if not q:
        return True
    q = q.lower()
    return any(q in (doc.get(f) or "").lower() for f in ("name", "email", "phone"))


class RecordReader:
    """Customers and API keys, listed the way orders are: PostgreSQL's rows
    plus, from Redis, the records whose newest version PostgreSQL may not
    have yet (``P:unsynced:d``, kept by doc_put.lua and mark_synced.lua)."""

    def __init__(self, store: Store, orders: OrderReader):
        self.store = store
        self.orders = orders

    async def customers(self, q: str | None, *, limit: int, offset: int) -> tuple[list[dict], int]:
        merchant = self.store.keys.merchant
        return await self._list("customer",
                                lambda conn, ex, n: queries.search_customers(conn, merchant, q, ex, n),
                                lambda doc: customer_matches(doc, q), limit=limit, offset=offset)

    async def api_keys(self, *, limit: int, offset: int) -> tuple[list[dict], int]:
        merchant = self.store.keys.merchant
        return await self._list("api_key", lambda conn, ex, n: queries.api_keys(conn, merchant, ex, n),
                                lambda doc: True, limit=limit, offset=offset)

    async def _list(self, kind: str, from_pg: Callable[..., Awaitable[tuple[list[dict], int]]],
                    matches: Callable[[dict], bool], *, limit: int, offset: int) -> tuple[list[dict], int]:
        redis, prefix = self.store.redis, self.store.keys.prefix
        tag = f"{kind}:".encode()
        unsynced = sorted(m[len(tag):].decode() for m in await redis.smembers(f"{prefix}:unsynced:d")
                          if m.startswith(tag))
        want = offset + limit
        older, total = await self.orders.pg_call(lambda conn: from_pg(conn, unsynced, want))
        recent = []
        if unsynced:
            async with redis.pipeline(transaction=False) as pipe:
                for rid in unsynced:
                    pipe.hget(f"{prefix}:d:{kind}:{rid}", "doc")
                raws = await pipe.execute()
            recent = [doc for raw in raws if raw and matches(doc := _doc.decode(raw))]
        recent.sort(key=_newest_first)
        merged = list(heapq.merge(recent, older, key=_newest_first))
        return merged[offset:want], total + len(recent)
