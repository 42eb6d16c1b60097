"""The comparison engine: reservations the way Saleor and Medusa make them.

One PostgreSQL transaction per order: lock the stock rows (``SELECT ... FOR
UPDATE``, in SKU order so two orders never deadlock), decide in Python,
insert the order and its lines, update the counters, commit with
``synchronous_commit = on`` (the durability of onhand's ``appendfsync
always``). Idempotency records live in a table.

It answers the part of :class:`engine.store.Store` the API uses in the
benchmark's scenarios, with the same semantics for the commands it supports
(PutSku, ReceiveStock with fills, PlaceOrder under every policy, Shopify
orders/create deliveries with their dedupe records, and PutRecord, which it
hands to an onhand Store because the API reads API keys and customers from
Redis in both engines), and the same result shapes, so the same Locust
checks apply. The load benchmark serves it with ``onhand serve --app
loadtests.baseline:create_baseline_app`` (:func:`create_baseline_app`);
nothing else changes behind the HTTP front.

It is a strong baseline, tuned beyond the ORMs it stands for: raw psycopg
with prepared statements, and every write after the lock (order, lines,
counters) in one statement, so the row lock is held for two round trips
(that statement and COMMIT), as briefly as this design allows. The ratios
the benchmark reports are therefore conservative. (psycopg's pipeline mode
would save another round trip, but its async driver spins on the socket
while a statement waits for a row lock, burning the CPU the API needs.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg
from psycopg import errors as pg_errors
from redis.asyncio import Redis

from engine.commands import (
    Command,
    Op,
    OrderLineRequest,
    PlaceOrder,
    PutRecord,
    PutSku,
    ReceiveStock,
)
from engine.errors import (
    IdempotencyInFlight,
    IdempotencyKeyReused,
    InvalidCommand,
    NotReady,
)
from engine.keys import Keys
from engine.model import (
    MAX_ORDER_LINES,
    Inventory,
    Order,
    inventory_from_snapshot,
    order_from_snapshot,
)
from engine.store import IN_FLIGHT_TTL_MS, Result, Store, raise_for
from loadtests import libpq
from loadtests.baseline_sql import COLS, LOCK, SCHEMA, STORE_OUTCOME, WRITE_ORDER, WRITE_STOCK

#: PostgreSQL connections per API process. Tried 2 to 32 on this machine kind
#: (the engine alone, 64 concurrent one-unit orders): 8 was at or near the
#: best on a hot SKU (more connections only queue on its row lock) and within
#: noise of the best on spread SKUs.
POOL_SIZE = 8
#: Stored outcomes (as in onhand): 2xx and stock or state refusals.
_STORED = ("ok", "insufficient_stock", "conflict")
_POLICIES = ("backorder", "ship_complete", "cancel_remainder", "all_or_nothing", "accept")

_encode = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()


@dataclass
class Stock:
    """One stock row, changed in Python while its lock is held."""

    sku: str
    oh: int
    rd: int
    rw: int
    bd: int
    bw: int
    ex: int
    fence: int
    v: int
    m: str
    touched: bool = False

    @property
    def available(self) -> int:
        return self.oh - self.rd - self.rw

    @property
    def available_to_wholesale(self) -> int:
        return max(0, self.available - self.fence)

    def cap(self, channel: str) -> int:
        return self.available_to_wholesale if channel == "wholesale" else self.available

    def snapshot(self) -> dict[str, Any]:
        return {"sku": self.sku, "oh": self.oh, "rd": self.rd, "rw": self.rw, "bd": self.bd,
                "bw": self.bw, "ex": self.ex, "fence": self.fence, "v": self.v, "m": self.m}


class _Refused(Exception):
    """Ends a transaction with a refusal (rolled back unless it is stored)."""

    def __init__(self, data: dict[str, Any]):
        super().__init__(data.get("c"))
        self.data = data


class _Pool:
    """A small fixed pool of autocommit connections (psycopg_pool is not a
    dependency of onhand)."""

    def __init__(self, conninfo: str, size: int):
        self.conninfo = conninfo
        self.size = size
        self._idle: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()
        self._opened = 0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        if self._idle.empty() and self._opened < self.size:
            self._opened += 1
            try:
                conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
            except psycopg.OperationalError as exc:
                self._opened -= 1
                raise NotReady(f"PostgreSQL unreachable: {exc}") from exc
        else:
            conn = await self._idle.get()
        try:
            yield conn
        finally:
            if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await conn.close()
                self._opened -= 1
            else:
                self._idle.put_nowait(conn)


class BaselineStore:
    """PostgreSQL row-lock reservations behind the Store interface."""

    def __init__(self, redis: Redis, database_url: str | None, merchant: str = "default", *,
                 pool_size: int = POOL_SIZE):
        if not database_url:
            raise ValueError("the baseline engine needs ONHAND_DATABASE_URL")
        self.redis = redis
        self.keys = Keys(merchant)
        # API keys and customers: written through to Redis exactly as onhand does
        self.records = Store(redis, merchant)
        self.pool = _Pool(libpq(database_url), pool_size)

    async def record(self, kind: str, record_id: str) -> tuple[int, str | None]:
        return await self.records.record(kind, record_id)

    async def start(self) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(72616)")  # one creator at a time
            await conn.execute(SCHEMA)
        await self.records.start()
        await self.redis.set(self.keys.epoch, "baseline", nx=True)

    async def is_ready(self) -> bool:
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1")
        return True

    async def scripts_loaded(self) -> bool:
        return True

    # ------------------------------------------------------------ commands

    async def run(self, command: Command, op: Op) -> Result:
        if isinstance(command, PutRecord):
            return await self.records.run(command, op)
        handler = {"PlaceOrder": self._place, "ReceiveStock": self._receive, "PutSku": self._put_sku,
                   "ApplyShopifyDelivery": self._shopify}.get(type(command).__name__)
        if handler is None:
            raise InvalidCommand("command", f"the baseline engine does not do {type(command).__name__}")
        try:
            async with self.pool.connection() as conn:
                data, replayed = await self._transaction(conn, handler, command, op)
        except pg_errors.UniqueViolation as exc:
            raise InvalidCommand("id", f"duplicate id: {exc.diag.message_detail}") from exc
        raise_for(data)
        return Result(data, replayed)

    async def _transaction(self, conn, handler, command: Command, op: Op) -> tuple[dict, bool]:
        keep = op.idempotency_ttl_ms > 0
        try:
            async with conn.transaction():
                if keep:
                    cur = await conn.execute(
                        "SELECT fingerprint, result FROM bl_idempotency WHERE op_id = %s "
                        "AND result IS NOT NULL AND expires_ms > %s", (op.op_id, op.now_ms))
                    row = await cur.fetchone()
                    if row:
                        if op.fingerprint and row[0] != op.fingerprint:
                            raise IdempotencyKeyReused("this operation id was used with another body")
                        return _decode.decode(row[1]), True
                try:
                    data = await handler(conn, command, op)
                except _Refused as refused:
                    if not keep or refused.data["c"] not in _STORED:
                        raise
                    data = refused.data
                data["c"] = data.get("c", "ok")
                if keep:
                    await conn.execute(STORE_OUTCOME, (op.op_id, op.fingerprint, _encode.encode(data).decode(),
                                                        op.now_ms + op.idempotency_ttl_ms))
                return data, False
        except _Refused as refused:
            return refused.data, False

    async def _lock(self, conn, skus: list[str]) -> dict[str, Stock]:
        cur = await conn.execute(LOCK, (sorted(set(skus)),))
        return {r[0]: Stock(*r) for r in await cur.fetchall()}

    @staticmethod
    def _stock_params(stock: dict[str, Stock]) -> dict[str, list]:
        """The touched rows as the arrays WRITE_STOCK takes (versions bumped)."""
        rows = [s for s in stock.values() if s.touched]
        for s in rows:
            s.v += 1
        names = ("sku", "oh", "rd", "rw", "bd", "bw", "ex", "fence", "v", "m")
        return {f"s_{n}": [getattr(s, n) for s in rows] for n in names}

    async def _write_stock(self, conn, stock: dict[str, Stock]) -> None:
        if any(s.touched for s in stock.values()):
            await conn.execute(WRITE_STOCK, self._stock_params(stock))

    async def _place(self, conn, cmd: PlaceOrder, op: Op) -> dict[str, Any]:
        channel, policy = cmd.channel, cmd.policy
        if channel not in ("dtc", "wholesale"):
            raise _Refused(_invalid("channel", "must be dtc or wholesale"))
        if policy not in _POLICIES or (policy == "accept" and channel != "dtc"):
            raise _Refused(_invalid("backorder_policy", "unknown backorder policy for this channel"))
        if not 1 <= len(cmd.lines) <= MAX_ORDER_LINES:
            raise _Refused(_invalid("lines", "an order needs 1 to 500 lines"))
        lenient = cmd.unknown_sku == "exception"
        stock = await self._lock(conn, [l.sku for l in cmd.lines if l.sku])
        plan = []  # [sku, qty, pooled, why]
        missing = []
        for line in cmd.lines:
            sku = line.sku or ""
            pooled, why = True, ""
            if sku not in stock:
                if not lenient:
                    missing.append(sku)
                pooled, why = False, ("missing_sku" if not sku else "unknown_sku")
            if cmd.test:
                pooled, why = False, "test_order"
            plan.append([sku, line.qty, pooled, why])
        if missing:
            raise _Refused({"c": "not_found", "detail": "unknown SKU", "kind": "sku", "skus": missing})
        free = {sku: s.cap(channel) for sku, s in stock.items()}
        if policy == "all_or_nothing" and not cmd.test:
            demand: dict[str, int] = {}
            for sku, qty, pooled, _ in plan:
                if pooled:
                    demand[sku] = demand.get(sku, 0) + qty
            short = [{"sku": sku, "requested": qty, "available": free[sku]}
                     for sku, qty in demand.items() if qty > free[sku]]
            if short:
                raise _Refused({"c": "insufficient_stock", "detail": "not enough stock for every line",
                                "lines": short})
        rows = []  # sku, qty, res, bo, exc, ship, canc, ret, why, pooled
        for sku, qty, pooled, why in plan:
            res = bo = exc = canc = 0
            if not pooled:
                if cmd.test:
                    canc = qty
                else:
                    exc = qty
            else:
                res = min(qty, free[sku])
                free[sku] -= res
                rest = qty - res
                if rest:
                    if policy == "cancel_remainder":
                        canc = rest
                    elif policy == "accept":
                        exc, why = rest, "oversold"
                    else:
                        bo = rest
                s = stock[sku]
                if channel == "wholesale":
                    s.rw += res
                    s.bw += bo
                else:
                    s.rd += res
                    s.bd += bo
                s.ex += exc
                s.touched = True
            rows.append([sku, qty, res, bo, exc, 0, canc, 0, why, 1 if pooled else 0])
        cur = await conn.execute(WRITE_ORDER, {
            "id": cmd.order_id, "channel": channel, "policy": policy, "doc": cmd.doc, "now": op.now_ms,
            "idx": list(range(len(rows))), "sku": [r[0] for r in rows], "qty": [r[1] for r in rows],
            "res": [r[2] for r in rows], "bo": [r[3] for r in rows], "exc": [r[4] for r in rows],
            "canc": [r[6] for r in rows], "why": [r[8] for r in rows],
            "pooled": [bool(r[9]) for r in rows], **self._stock_params(stock)})
        (seq,) = await cur.fetchone()
        order = {"id": cmd.order_id, "d": cmd.doc, "n": seq, "c": channel, "p": policy, "L": rows,
                 "S": "[]", "R": "[]", "v": 1, "u": op.now_ms}
        return {"order_id": cmd.order_id, "order": order, "fills": [], "more": []}

    async def _shopify(self, conn, cmd: Command, op: Op) -> dict[str, Any]:
        """A Shopify orders/create delivery (the only topic the benchmark
        sends): its dedupe records and the order under accept, in one
        transaction. A duplicate racing the first waits on the first's
        record (a unique key) and then finds it."""
        if cmd.topic != "orders/create" or not cmd.order:
            raise _Refused(_invalid("topic", "the baseline engine takes orders/create deliveries only"))
        keys = sorted(set(cmd.keys))
        cur = await conn.execute(
            "INSERT INTO bl_webhook_records (key, order_id, expires_ms) SELECT k, %s, %s "
            "FROM unnest(%s::text[]) AS k ON CONFLICT DO NOTHING RETURNING key",
            (cmd.order_id, op.now_ms + cmd.record_ttl_ms, keys))
        if len(await cur.fetchall()) < len(keys):
            raise _Refused({"c": "ok", "order_id": cmd.order_id, "duplicate": True})
        o = cmd.order
        place = PlaceOrder(order_id=o["order_id"], channel=o["channel"], policy=o["policy"],
                           doc=o.get("doc") or "{}", unknown_sku=o.get("unknown_sku") or "refuse",
                           test=bool(o.get("test")),
                           lines=tuple(OrderLineRequest(sku=l.get("sku"), qty=l["qty"]) for l in o["lines"]))
        return {**await self._place(conn, place, op), "applied": []}

    async def _receive(self, conn, cmd: ReceiveStock, op: Op) -> dict[str, Any]:
        qty: dict[str, int] = {}
        for line in cmd.lines:
            qty[line.sku] = qty.get(line.sku, 0) + line.qty
        stock = await self._lock(conn, list(qty))
        missing = [sku for sku in qty if sku not in stock]
        if missing:
            raise _Refused({"c": "not_found", "detail": "unknown SKU", "kind": "sku", "skus": missing})
        receipt = {"id": cmd.receipt_id, "reference": cmd.reference,
                   "lines": [{"sku": sku, "quantity": n} for sku, n in qty.items()],
                   "received_at_ms": op.now_ms}
        if cmd.reference is not None:
            cur = await conn.execute(
                "INSERT INTO bl_receipts (id, reference, body) VALUES (%s, %s, %s) "
                "ON CONFLICT (reference) DO NOTHING RETURNING id",
                (cmd.receipt_id, cmd.reference, _encode.encode(receipt).decode()))
            if await cur.fetchone() is None:
                raise _Refused({"c": "conflict", "detail": "this receipt reference was already used",
                                "reason": "reference_used"})
        fills = []
        for sku, n in qty.items():
            stock[sku].oh += n
            stock[sku].touched = True
            fills += await self._fill(conn, stock[sku], op)
        await self._write_stock(conn, stock)
        return {"receipt": receipt, "fills": fills, "more": []}

    async def _put_sku(self, conn, cmd: PutSku, op: Op) -> dict[str, Any]:
        await conn.execute("INSERT INTO bl_stock (sku) VALUES (%s) ON CONFLICT DO NOTHING", (cmd.sku,))
        stock = await self._lock(conn, [cmd.sku])
        s = stock[cmd.sku]
        details = _decode.decode(s.m)
        for k, v in cmd.meta.items():
            if v is None:
                details.pop(k, None)
            else:
                details[k] = v
        s.m = _encode.encode(details).decode()
        s.touched = True
        before = s.available_to_wholesale
        if cmd.dtc_reserve is not None:
            s.fence = cmd.dtc_reserve
        fills = await self._fill(conn, s, op) if s.available_to_wholesale > before else []
        await self._write_stock(conn, stock)
        return {"sku": cmd.sku, "inventory": s.snapshot(), "fills": fills, "more": []}

    async def _fill(self, conn, s: Stock, op: Op) -> list[dict[str, Any]]:
        """Fills the SKU's waiting lines in acceptance order, as fill.lua does:
        a wholesale line takes at most available_to_wholesale and is passed
        over at 0; DTC lines may take all of available."""
        if s.available <= 0:
            return []
        cur = await conn.execute(
            "SELECT l.order_id, l.idx, l.backordered, l.exception, o.channel "
            "FROM bl_order_lines l JOIN bl_orders o ON o.id = l.order_id "
            "WHERE l.sku = %s AND l.pooled AND l.backordered + l.exception > 0 "
            "ORDER BY o.seq FOR UPDATE OF l, o", (s.sku,))
        fills = []
        for order_id, idx, bo, exc, channel in await cur.fetchall():
            if s.available <= 0:
                break
            cap = s.cap(channel)
            if cap <= 0:
                continue
            take_exc = min(exc, cap)
            take_bo = min(bo, cap - take_exc)
            units = take_exc + take_bo
            await conn.execute(
                "UPDATE bl_order_lines SET reserved = reserved + %s, backordered = backordered - %s, "
                "exception = exception - %s WHERE order_id = %s AND idx = %s",
                (units, take_bo, take_exc, order_id, idx))
            await conn.execute("UPDATE bl_orders SET version = version + 1, updated_ms = %s WHERE id = %s",
                               (op.now_ms, order_id))
            if channel == "wholesale":
                s.rw, s.bw = s.rw + units, s.bw - take_bo
            else:
                s.rd, s.bd = s.rd + units, s.bd - take_bo
            s.ex -= take_exc
            s.touched = True
            fills.append({"sku": s.sku, "order_id": order_id, "line": idx, "units": units})
        return fills

    # ------------------------------------------------------------ idempotency

    async def claim(self, op_id: str, fingerprint: str, ttl_ms: int = IN_FLIGHT_TTL_MS) -> Result | None:
        now = int(time.time() * 1000)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO bl_idempotency (op_id, fingerprint, result, in_flight_until_ms, expires_ms) "
                "VALUES (%s, %s, NULL, %s, %s) ON CONFLICT (op_id) DO UPDATE "
                "SET fingerprint = excluded.fingerprint, result = NULL, "
                "in_flight_until_ms = excluded.in_flight_until_ms, expires_ms = excluded.expires_ms "
                "WHERE bl_idempotency.expires_ms <= %s OR (bl_idempotency.result IS NULL "
                "AND bl_idempotency.in_flight_until_ms <= %s) RETURNING 1",
                (op_id, fingerprint, now + ttl_ms, now + ttl_ms, now, now))
            if await cur.fetchone():
                return None
            cur = await conn.execute("SELECT fingerprint, result FROM bl_idempotency WHERE op_id = %s",
                                     (op_id,))
            row = await cur.fetchone()
        if row is None or row[1] is None:
            raise IdempotencyInFlight("a request with this Idempotency-Key is still being processed")
        if row[0] != fingerprint:
            raise IdempotencyKeyReused("this Idempotency-Key was used with another body")
        return Result(_decode.decode(row[1]), True)

    async def release(self, op_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM bl_idempotency WHERE op_id = %s AND result IS NULL", (op_id,))

    # ------------------------------------------------------------ reads

    async def inventory(self, skus: list[str]) -> list[Inventory | None]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(f"SELECT {COLS} FROM bl_stock WHERE sku = ANY(%s)", (skus,))
            found = {r[0]: Stock(*r) for r in await cur.fetchall()}
        return [inventory_from_snapshot(found[s].snapshot()) if s in found else None for s in skus]

    async def order(self, order_id: str) -> Order | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT seq, channel, policy, doc, version, updated_ms FROM bl_orders WHERE id = %s",
                (order_id,))
            head = await cur.fetchone()
            if head is None:
                return None
            cur = await conn.execute(
                "SELECT sku, quantity, reserved, backordered, exception, shipped, cancelled, returned, "
                "why, pooled FROM bl_order_lines WHERE order_id = %s ORDER BY idx", (order_id,))
            lines = [[*r[:9], 1 if r[9] else 0] for r in await cur.fetchall()]
        seq, channel, policy, doc, version, updated_ms = head
        return order_from_snapshot({"id": order_id, "d": doc, "n": seq, "c": channel, "p": policy,
                                    "L": lines, "S": "[]", "R": "[]", "v": version, "u": updated_ms})


def _invalid(field: str, detail: str) -> dict[str, Any]:
    return {"c": "invalid", "field": field, "detail": detail}


def create_baseline_app():
    """The onhand API with this engine behind it, for ``onhand serve --app
    loadtests.baseline:create_baseline_app`` (the load benchmark): the product
    itself imports nothing from loadtests/."""
    from api.app import create_app

    return create_app(store_factory=lambda redis, settings, merchant: BaselineStore(
        redis, settings.database_url, merchant))
