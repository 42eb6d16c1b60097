"""Compare Redis with PostgreSQL and report drift that does not go away.

A pass takes one atomic snapshot of Redis (MULTI: every SKU's counters, every
order in Redis, and the outbox entries not yet applied at that moment - the
cut-off) and compares it with PostgreSQL:

- a SKU or order whose version PostgreSQL also has must match it exactly;
- one whose newer version PostgreSQL lacks must be carried by an outbox
  entry not yet applied (else the change was lost on its way: drift);
- PostgreSQL must agree with itself: each SKU's counters equal the sum of its
  ledger movements, and its reserved/backordered/exception counters equal the
  sums over the order lines.

Drift seen in a pass may be a batch still committing, so only drift that is
still there on a second pass is reported.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from redis import Redis
from sqlalchemy import Engine, func, select

from engine.keys import Keys
from engine.model import as_list
from persistence.models import LedgerEntry, Order, OrderLine, Sku

_decode = msgspec.json.Decoder()
COUNTERS = ("oh", "rd", "rw", "bd", "bw", "ex")
PG_COLUMNS = ("on_hand", "reserved_dtc", "reserved_wholesale", "backordered_dtc",
              "backordered_wholesale", "exception")


@dataclass(frozen=True)
class Drift:
    kind: str
    entity: str
    detail: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.entity)


@dataclass
class ReconcileResult:
    drifts: list[Drift] = field(default_factory=list)
    transient: int = 0
    checked_skus: int = 0
    checked_orders: int = 0
    pending: int = 0
    cutoff: str = "0-0"


def reconcile(redis: Redis, engine: Engine, keys: Keys, *, settle_s: float = 3.0,
              progress: Callable[[str, int, int], None] | None = None) -> ReconcileResult:
    progress = progress or (lambda stage, done, total: None)
    first = _pass(redis, engine, keys)
    progress("first pass", 1, 2)
    if not first.drifts:
        progress("second pass", 2, 2)
        return first
    time.sleep(settle_s)
    second = _pass(redis, engine, keys)
    progress("second pass", 2, 2)
    seen = {d.key for d in first.drifts}
    second.transient = len([d for d in first.drifts if d.key not in {x.key for x in second.drifts}])
    second.drifts = [d for d in second.drifts if d.key in seen]
    return second


def _pass(redis: Redis, engine: Engine, keys: Keys) -> ReconcileResult:
    result = ReconcileResult()
    skus, orders, pending = _redis_snapshot(redis, keys)
    result.pending = len(pending)
    result.cutoff = pending[-1][0] if pending else "0-0"
    # what the entries not yet applied will bring: newest version per entity
    coming_sku: dict[str, int] = {}
    coming_order: dict[str, int] = {}
    for _eid, event in pending:
        for s in as_list(event.get("skus")):
            coming_sku[s["sku"]] = max(coming_sku.get(s["sku"], 0), int(s["v"]))
        for o in as_list(event.get("orders")):
            coming_order[o["id"]] = max(coming_order.get(o["id"], 0), int(o["v"]))
    # one PostgreSQL snapshot for every query of the pass
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        m = keys.merchant
        pg_skus = {row.sku: row for row in conn.execute(select(Sku).where(Sku.merchant_id == m))}
        result.checked_skus = len(skus)
        for sku, counters in skus.items():
            row = pg_skus.get(sku)
            _compare_versioned(result, "sku", sku, int(counters["v"]), row.version if row else 0,
                               coming_sku.get(sku, 0),
                               {c: int(counters[c]) for c in COUNTERS},
                               {c: getattr(row, p) for c, p in zip(COUNTERS, PG_COLUMNS)} if row else {})
        for sku in pg_skus.keys() - skus.keys():
            result.drifts.append(Drift("sku_missing_in_redis", sku, "PostgreSQL has it, Redis does not"))
        result.checked_orders = len(orders)
        pg_orders = _pg_orders(conn, m, list(orders))
        for oid, snap in orders.items():
            pg = pg_orders.get(oid)
            redis_lines = [tuple(line[:8]) for line in snap_lines(snap)]
            _compare_versioned(result, "order", oid, int(snap["v"]), pg["version"] if pg else 0,
                               coming_order.get(oid, 0), redis_lines, pg["lines"] if pg else [])
        _pg_self_consistency(conn, m, result, pending_skus=set(coming_sku))
    return result


def snap_lines(snap: dict) -> list[list]:
    lines = snap["L"]
    return _decode.decode(lines) if isinstance(lines, str | bytes) else lines


def _compare_versioned(result: ReconcileResult, kind: str, entity: str, redis_v: int, pg_v: int,
                       coming_v: int, a, b) -> None:
    if redis_v == pg_v:
        if a != b:
            result.drifts.append(Drift(f"{kind}_mismatch", entity,
                                       f"version {redis_v}: Redis {a} but PostgreSQL {b}"))
    elif redis_v > pg_v:
        if coming_v < redis_v:
            result.drifts.append(Drift(f"{kind}_lost_change", entity,
                                       f"Redis is at version {redis_v}, PostgreSQL at {pg_v}, and no "
                                       "outbox entry still to apply carries the difference"))
    elif pg_v > coming_v:
        # (PostgreSQL may be ahead of the snapshot only by entries that were
        # still to apply at the cut-off and were applied since)
        result.drifts.append(Drift(f"{kind}_ahead_in_postgres", entity,
                                   f"PostgreSQL version {pg_v} is newer than Redis's {redis_v}"))


def _redis_snapshot(redis: Redis, keys: Keys):
    names = [m.decode() for m in redis.zrange(keys.skus, 0, -1)]
    order_keys = [k for k in redis.scan_iter(match=keys.order("*"), count=2000)]
    with redis.pipeline(transaction=True) as pipe:  # MULTI: one consistent moment
        for sku in names:
            pipe.hgetall(keys.sku(sku))
        for key in order_keys:
            pipe.hgetall(key)
        pipe.xrange(keys.outbox)
        replies = pipe.execute()
    skus = {}
    for sku, row in zip(names, replies[:len(names)], strict=True):
        if row:
            skus[sku] = {k.decode(): v.decode() for k, v in row.items()}
    orders = {}
    prefix_len = len(keys.order(""))
    for key, row in zip(order_keys, replies[len(names):-1], strict=True):
        if row:
            snap = {k.decode(): v.decode() for k, v in row.items()}
            snap["id"] = key.decode()[prefix_len:]
            orders[snap["id"]] = snap
    pending = [(eid.decode(), _decode.decode(f[b"e"])) for eid, f in replies[-1] if f]
    return skus, orders, pending


def _pg_orders(conn, merchant: str, ids: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for i in range(0, len(ids), 5000):
        chunk = ids[i:i + 5000]
        for oid, version in conn.execute(select(Order.id, Order.version).where(
                Order.merchant_id == merchant, Order.id.in_(chunk))):
            out[oid] = {"version": version, "lines": []}
        for line in conn.execute(select(OrderLine).where(OrderLine.merchant_id == merchant,
                                                         OrderLine.order_id.in_(chunk))
                                 .order_by(OrderLine.order_id, OrderLine.idx)):
            out[line.order_id]["lines"].append((line.sku or "", line.quantity, line.reserved, line.backordered,
                                                line.exception, line.shipped, line.cancelled, line.returned))
    return out


def _pg_self_consistency(conn, merchant: str, result: ReconcileResult, pending_skus: set[str]) -> None:
    """Counters = sum of ledger movements = sums over open lines, per SKU.
    SKUs with changes still in the outbox are skipped (they are mid-flight)."""
    ledger = {row.sku: row for row in conn.execute(
        select(LedgerEntry.sku, *[func.sum(getattr(LedgerEntry, f"d_{c}")).label(c) for c in PG_COLUMNS])
        .where(LedgerEntry.merchant_id == merchant).group_by(LedgerEntry.sku))}
    lines = defaultdict(lambda: defaultdict(int))
    rows = conn.execute(
        select(OrderLine.sku, Order.channel, func.sum(OrderLine.reserved), func.sum(OrderLine.backordered),
               func.sum(OrderLine.exception))
        .join(Order, (Order.merchant_id == OrderLine.merchant_id) & (Order.id == OrderLine.order_id))
        .where(OrderLine.merchant_id == merchant, OrderLine.pooled)
        .group_by(OrderLine.sku, Order.channel))
    for sku, channel, reserved, backordered, exception in rows:
        ch = "wholesale" if channel == "wholesale" else "dtc"
        lines[sku][f"reserved_{ch}"] += int(reserved)
        lines[sku][f"backordered_{ch}"] += int(backordered)
        lines[sku]["exception"] += int(exception)
    for row in conn.execute(select(Sku).where(Sku.merchant_id == merchant)):
        if row.sku in pending_skus:
            continue
        counters = {c: getattr(row, c) for c in PG_COLUMNS}
        moved = ledger.get(row.sku)
        summed = {c: int(getattr(moved, c) or 0) for c in PG_COLUMNS} if moved else dict.fromkeys(PG_COLUMNS, 0)
        if summed != counters:
            result.drifts.append(Drift("ledger_mismatch", row.sku,
                                       f"counters {counters} but the ledger adds up to {summed}"))
        from_lines = {c: lines[row.sku][c] for c in PG_COLUMNS if c != "on_hand"}
        stored = {c: counters[c] for c in PG_COLUMNS if c != "on_hand"}
        if from_lines != stored:
            result.drifts.append(Drift("lines_mismatch", row.sku,
                                       f"counters {stored} but the order lines add up to {from_lines}"))
