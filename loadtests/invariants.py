"""The checks after every scenario, against the stores themselves.

For onhand (after the outbox has drained), per SKU the scenario touched:
- zero oversell: available = on_hand - reserved >= 0, in Redis and in PostgreSQL;
- exact conservation: on hand = received - shipped (nothing ships in the
  bench, so on hand = received); reserved, backordered and exception units
  by channel = the sums over the open order lines; the ledger's movements
  add up to the counters; Redis and PostgreSQL hold the same counters;
- every 2xx order id is in PostgreSQL exactly once with the lines its 201
  answered, no order exists that was not answered 2xx, and the API finds it;
- Shopify orders: each one delivered (once or twice) is exactly one order.
For the baseline, the same against its tables (it has no Redis copy).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
import psycopg
from redis import Redis

from engine.keys import Keys
from loadtests import libpq

#: At most this many orders are read back through the API per scenario.
API_SAMPLE = 1500
_COUNTERS = ("on_hand", "reserved_dtc", "reserved_wholesale", "backordered_dtc",
             "backordered_wholesale", "exception")


@dataclass
class Invariants:
    """What was checked and what broke."""

    scenario: str
    engine: str
    passed: list[str] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaches

    def expect(self, ok: bool, what: str, detail: str = "") -> None:
        if ok:
            self.passed.append(what)
        else:
            self.breaches.append(f"{what}: {detail}"[:1000])


def _redis_counters(redis: Redis, keys: Keys, skus: list[str]) -> dict[str, dict[str, int]]:
    pipe = redis.pipeline(transaction=False)
    for sku in skus:
        pipe.hmget(keys.sku(sku), "oh", "rd", "rw", "bd", "bw", "ex")
    out = {}
    for sku, row in zip(skus, pipe.execute(), strict=True):
        if row[0] is not None:
            out[sku] = dict(zip(_COUNTERS, (int(v or 0) for v in row), strict=True))
    return out


def _line_sums(conn, sql: str, skus: list[str]) -> dict[str, dict[str, int]]:
    sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_COUNTERS[1:], 0))
    for sku, channel, res, bo, exc in conn.execute(sql, (skus,)):
        s = sums[sku]
        s[f"reserved_{channel}"] += int(res)
        s[f"backordered_{channel}"] += int(bo)
        s["exception"] += int(exc)
    return sums


def _conservation(inv: Invariants, where: str, counters: dict[str, dict[str, int]],
                  received: dict[str, int], lines: dict[str, dict[str, int]]) -> None:
    missing = sorted(set(received) - set(counters))
    inv.expect(not missing, f"{where}: every SKU exists", f"missing {missing[:5]}")
    oversold = {s: c["on_hand"] - c["reserved_dtc"] - c["reserved_wholesale"]
                for s, c in counters.items() if c["on_hand"] - c["reserved_dtc"] - c["reserved_wholesale"] < 0}
    inv.expect(not oversold, f"{where}: zero oversell (available >= 0 for {len(counters)} SKUs)",
               f"{oversold}")
    wrong_oh = {s: (c["on_hand"], received[s]) for s, c in counters.items()
                if s in received and c["on_hand"] != received[s]}
    inv.expect(not wrong_oh, f"{where}: on hand = received - shipped", f"(on hand, received) {wrong_oh}")
    drift = {}
    for sku, c in counters.items():
        want = lines.get(sku, dict.fromkeys(_COUNTERS[1:], 0))
        diff = {k: (c[k], want[k]) for k in _COUNTERS[1:] if c[k] != want[k]}
        if diff:
            drift[sku] = diff
    inv.expect(not drift, f"{where}: reserved/backordered/exception = sums over open order lines",
               f"(counter, lines) {dict(list(drift.items())[:5])}")


def _orders_exactly_once(inv: Invariants, where: str, accepted: dict[str, dict], found: dict[str, list],
                         touching: set[str], duplicates: list[str]) -> None:
    inv.expect(not duplicates, f"{where}: no order id answered twice", f"{duplicates[:5]}")
    absent = [oid for oid in accepted if oid not in found]
    inv.expect(not absent, f"{where}: every 2xx order present ({len(accepted)})",
               f"{len(absent)} absent, e.g. {absent[:5]}")
    phantom = sorted(touching - set(accepted))
    inv.expect(not phantom, f"{where}: no order that was not answered 2xx",
               f"{len(phantom)} extra, e.g. {phantom[:5]}")
    differ = [oid for oid, rec in accepted.items() if oid in found and found[oid] != rec["lines"]]
    inv.expect(not differ, f"{where}: stored lines = the lines the 201 answered",
               f"{len(differ)} differ, e.g. {differ[:3]}")


def _api_reads(inv: Invariants, api_url: str, admin_key: str, accepted: dict[str, dict]) -> None:
    ids = list(accepted)
    sample = ids if len(ids) <= API_SAMPLE else random.sample(ids, API_SAMPLE)
    bad = []
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as client:
        for oid in sample:
            r = client.get(f"/v1/orders/{oid}")
            if r.status_code != 200:
                bad.append(f"{oid}: {r.status_code}")
                continue
            got = [[l["sku"], l["quantity"], l["reserved"], l["backordered"], l["exception"]]
                   for l in r.json()["lines"]]
            if got != accepted[oid]["lines"]:
                bad.append(f"{oid}: lines {got}")
    inv.expect(not bad, f"API: GET /v1/orders/{{id}} finds each 2xx order as answered ({len(sample)} read)",
               f"{len(bad)} bad, e.g. {bad[:3]}")


def check_onhand_stock(scenario: str, redis: Redis, keys: Keys, database_url: str,
                       received: dict[str, int]) -> Invariants:
    """The stock part alone (for wrk and open-loop runs, whose order ids are not kept)."""
    inv = Invariants(scenario, "onhand")
    _onhand(inv, redis, keys, database_url, received)
    return inv


def check_baseline_stock(scenario: str, database_url: str, received: dict[str, int]) -> Invariants:
    inv = Invariants(scenario, "baseline")
    _baseline(inv, database_url, received)
    return inv


def check_onhand(scenario: str, redis: Redis, keys: Keys, database_url: str, api_url: str, admin_key: str,
                 received: dict[str, int], accepted: dict[str, dict], duplicates: list[str],
                 shopify_orders: dict[str, dict] | None = None) -> Invariants:
    inv = Invariants(scenario, "onhand")
    found, by_shopify = _onhand(inv, redis, keys, database_url, received)
    return _check_orders(inv, api_url, admin_key, accepted, duplicates, shopify_orders, found, by_shopify)


def _onhand(inv: Invariants, redis: Redis, keys: Keys, database_url: str,
            received: dict[str, int]) -> tuple[dict[str, list], dict[str, set[str]]]:
    skus = sorted(received)
    backlog = redis.xlen(keys.outbox)
    inv.expect(backlog == 0, "outbox drained before checking PostgreSQL", f"{backlog} entries left")
    in_redis = _redis_counters(redis, keys, skus)
    with psycopg.connect(libpq(database_url)) as conn:
        in_pg = {r[0]: dict(zip(_COUNTERS, map(int, r[1:]), strict=True)) for r in conn.execute(
            f"SELECT sku, {', '.join(_COUNTERS)} FROM skus WHERE sku = ANY(%s)", (skus,))}
        lines = _line_sums(conn, "SELECT l.sku, o.channel, sum(l.reserved), sum(l.backordered), "
                                 "sum(l.exception) FROM order_lines l JOIN orders o ON o.id = l.order_id "
                                 "WHERE l.pooled AND l.sku = ANY(%s) GROUP BY 1, 2", skus)
        ledger = {r[0]: dict(zip(_COUNTERS, map(int, r[1:]), strict=True)) for r in conn.execute(
            "SELECT sku, sum(d_on_hand), sum(d_reserved_dtc), sum(d_reserved_wholesale), "
            "sum(d_backordered_dtc), sum(d_backordered_wholesale), sum(d_exception) "
            "FROM inventory_ledger WHERE sku = ANY(%s) GROUP BY sku", (skus,))}
        rows = conn.execute(
            "SELECT l.order_id, l.sku, l.quantity, l.reserved, l.backordered, l.exception, "
            "o.shopify_order_id FROM order_lines l JOIN orders o ON o.id = l.order_id "
            "WHERE l.order_id IN (SELECT order_id FROM order_lines WHERE sku = ANY(%s)) "
            "ORDER BY l.order_id, l.idx", (skus,)).fetchall()
    _conservation(inv, "Redis", in_redis, received, lines)
    _conservation(inv, "PostgreSQL", in_pg, received, lines)
    differ = {s for s in skus if in_redis.get(s) != in_pg.get(s)}
    inv.expect(not differ, "Redis and PostgreSQL hold the same counters", f"{sorted(differ)[:5]}")
    off = {s for s in skus if ledger.get(s) != in_pg.get(s)}
    inv.expect(not off, "the ledger's movements add up to the counters", f"{sorted(off)[:5]}")
    return _stored_orders(rows)


def _stored_orders(rows) -> tuple[dict[str, list], dict[str, set[str]]]:
    """Rows of (order id, sku, quantity, reserved, backordered, exception,
    Shopify order id) as {order id: lines} and {Shopify id: order ids}."""
    found: dict[str, list] = defaultdict(list)
    by_shopify: dict[str, set[str]] = defaultdict(set)
    for oid, sku, qty, res, bo, exc, shopify_id in rows:
        found[oid].append([sku, int(qty), int(res), int(bo), int(exc)])
        if shopify_id:
            by_shopify[str(shopify_id)].add(oid)
    return found, by_shopify


def _shopify_once(inv: Invariants, shopify_orders: dict[str, dict], by_shopify: dict[str, set[str]],
                  found: dict[str, list]) -> None:
    counts = {sid: len(by_shopify.get(sid, ())) for sid in shopify_orders}
    twice = {sid: n for sid, n in counts.items() if n > 1}
    none = [sid for sid, n in counts.items() if n == 0]
    inv.expect(not none, f"every Shopify order delivered is an onhand order ({len(shopify_orders)})",
               f"{len(none)} missing, e.g. {none[:5]}")
    inv.expect(not twice, "no Shopify order became two orders (duplicate deliveries)", f"{twice}")
    extra = sorted(set(by_shopify) - set(shopify_orders))
    inv.expect(not extra, "no onhand order for a Shopify order that was not bought", f"{extra[:5]}")
    wrong = []
    for sid, want in shopify_orders.items():
        for oid in by_shopify.get(sid, ()):
            lines = found[oid]
            if len(lines) != 1 or lines[0][0] != want["sku"] or lines[0][1] != want["quantity"] \
                    or lines[0][2] + lines[0][4] != want["quantity"] or lines[0][3]:
                wrong.append(f"{sid}->{oid}: {lines}")
    inv.expect(not wrong, "each Shopify order: its line, reserved + exception = quantity (accept policy)",
               f"{wrong[:3]}")


def check_baseline(scenario: str, database_url: str, api_url: str, admin_key: str, received: dict[str, int],
                   accepted: dict[str, dict], duplicates: list[str],
                   shopify_orders: dict[str, dict] | None = None) -> Invariants:
    inv = Invariants(scenario, "baseline")
    found, by_shopify = _baseline(inv, database_url, received)
    return _check_orders(inv, api_url, admin_key, accepted, duplicates, shopify_orders, found, by_shopify)


def _check_orders(inv: Invariants, api_url: str, admin_key: str, accepted: dict[str, dict],
                  duplicates: list[str], shopify_orders: dict[str, dict] | None,
                  found: dict[str, list], by_shopify: dict[str, set[str]]) -> Invariants:
    """Every 2xx order stored exactly once (and read back through the API), or
    for a webhook burst every Shopify order once."""
    if shopify_orders is None:
        _orders_exactly_once(inv, "PostgreSQL", accepted, found, set(found), duplicates)
        _api_reads(inv, api_url, admin_key, accepted)
    else:
        _shopify_once(inv, shopify_orders, by_shopify, found)
    return inv


def _baseline(inv: Invariants, database_url: str,
              received: dict[str, int]) -> tuple[dict[str, list], dict[str, set[str]]]:
    skus = sorted(received)
    with psycopg.connect(libpq(database_url)) as conn:
        counters = {r[0]: dict(zip(_COUNTERS, map(int, r[1:]), strict=True)) for r in conn.execute(
            f"SELECT sku, {', '.join(_COUNTERS)} FROM bl_stock WHERE sku = ANY(%s)", (skus,))}
        lines = _line_sums(conn, "SELECT l.sku, o.channel, sum(l.reserved), sum(l.backordered), "
                                 "sum(l.exception) FROM bl_order_lines l JOIN bl_orders o ON o.id = l.order_id "
                                 "WHERE l.pooled AND l.sku = ANY(%s) GROUP BY 1, 2", skus)
        rows = conn.execute(
            "SELECT l.order_id, l.sku, l.quantity, l.reserved, l.backordered, l.exception, "
            "o.doc::jsonb ->> 'shopify_order_id' FROM bl_order_lines l JOIN bl_orders o ON o.id = l.order_id "
            "WHERE l.order_id IN (SELECT order_id FROM bl_order_lines WHERE sku = ANY(%s)) "
            "ORDER BY l.order_id, l.idx", (skus,)).fetchall()
    _conservation(inv, "PostgreSQL", counters, received, lines)
    return _stored_orders(rows)
