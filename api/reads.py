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

    async def exists(self, f: OrderFilter) -> bool:
        """Whether any order matches (the staff UI's search tries several readings of a query)."""
        redis, keys = self.store.redis, self.store.keys
        unsynced = sorted(m.decode() for m in await redis.smembers(keys.unsynced))
        if await self.pg_call(lambda conn: queries.count_orders(conn, self.store.keys.merchant, f, unsynced, cap=1)):
            return True
        return bool(await self._recent(unsynced, f))

    async def list(self, f: OrderFilter, *, limit: int, offset: int,
                   count_cap: int | None = None) -> tuple[list[Order], int]:
        """A page of the matching orders, newest first, and how many match
        (with ``count_cap``: counted up to that many in PostgreSQL)."""
        redis, keys = self.store.redis, self.store.keys
        unsynced = sorted(m.decode() for m in await redis.smembers(keys.unsynced))

        async def count(conn):
            return await queries.count_orders(conn, keys.merchant, f, unsynced, cap=count_cap)

        # PostgreSQL first: while it is down this answers 503 before reading
        # what may be a long backlog of unsynced orders from Redis
        pg_total = await self.pg_call(count)
        recent = await self._recent(unsynced, f)
        newest_in_pg = 0
        if recent:
            newest_in_pg = await self.pg_call(lambda conn: queries.newest_number(conn, keys.merchant, f, unsynced))
        if not recent or recent[-1].number > newest_in_pg:
            # the usual case: the orders PostgreSQL lacks are the newest ones,
            # so they come first and PostgreSQL pages the rest by itself
            head = recent[offset:offset + limit]
            skip, want = max(0, offset - len(recent)), limit - len(head)
            older = await self._page(f, unsynced, want, skip, pg_total) if want else []
            return head + older, pg_total + len(recent)
        want = offset + limit
        older = await self._page(f, unsynced, want, 0, pg_total)
        merged = list(heapq.merge(recent, older, key=lambda o: -o.number))
        return merged[offset:want], pg_total + len(recent)

    async def _page(self, f: OrderFilter, unsynced: list[str], limit: int, offset: int,
                    matches: int) -> list[Order]:
        async def rows(conn):
            return [order_from_snapshot(r) for r in await queries.list_orders(
                conn, self.store.keys.merchant, f, unsynced, limit, offset, matches=matches)]

        return await self.pg_call(rows)

    async def _recent(self, unsynced: list[str], f: OrderFilter) -> list[Order]:
        """The matching orders PostgreSQL may not have yet, from Redis, newest first."""
        if not unsynced:
            return []
        redis, keys = self.store.redis, self.store.keys
        async with redis.pipeline(transaction=False) as pipe:
            for oid in unsynced:
                pipe.hgetall(keys.order(oid))
            rows = await pipe.execute()
        recent: list[Order] = []
        for oid, row in zip(unsynced, rows, strict=True):
            if not row:
                continue
            snap = {k.decode(): v.decode() for k, v in row.items()}
            snap["id"] = oid
            order = order_from_snapshot(snap)
            if f.matches(order, order.header):
                recent.append(order)
        recent.sort(key=lambda o: o.number, reverse=True)
        return recent

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
    """The PostgreSQL search's rule (a substring of name, email, phone,
    company or account number, any case), for a customer read from Redis."""
    if not q:
        return True
    q = q.lower()
    return any(q in (doc.get(f) or "").lower() for f in CUSTOMER_SEARCH_FIELDS)


#: What a customer search looks in (persistence/queries.py searches the same).
CUSTOMER_SEARCH_FIELDS = ("name", "email", "phone", "company", "account_number")


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

    async def users(self, *, limit: int, offset: int) -> tuple[list[dict], int]:
        """Staff users of the web UI (their docs hold the password hash: never show it)."""
        merchant = self.store.keys.merchant
        return await self._list("user", lambda conn, ex, n: queries.users(conn, merchant, ex, n),
                                lambda doc: True, limit=limit, offset=offset)

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
