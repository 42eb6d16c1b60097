"""Shopify sync lag: how long after a stock change Shopify shows it.

Runs the Shopify emulator, onhand's API (granian) and one worker process
(`onhand worker`), each in its own process, against the Redis and PostgreSQL
of ONHAND_REDIS_URL / ONHAND_DATABASE_URL (a fresh database and merchant per
run). For ``--seconds`` it keeps changing stock on both sides at once:
wholesale orders and receipts through onhand's API, storefront purchases and
cancels with restock on the emulator (whose webhooks reach onhand).

Measured:
- lag of every write the emulator accepted: its time minus the time of the
  oldest change of that SKU the write carried (onhand's sync log), p50/p99;
- settle time: from the last change until Shopify equals onhand for every SKU;
- GraphQL calls against changes; the highest requested cost and throttled
  calls (the budget); mutations refused by the schema;
- writes above onhand's available at the push's read minus the sales Shopify
  had not delivered (must be 0).

    python -m loadtests.shopify_sync_bench --seconds 30 --skus 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import msgspec
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine.keys import Keys
from persistence.db import migrate, sqlalchemy_url
from persistence.rebuild import Rebuilder

ADMIN_KEY = "bench-admin-key-shopify-sync-0123"
SECRET = "bench-shopify-secret"
TOKEN = "shpat_bench_token"
SHOP = "bench-shop.myshopify.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, args):
        self.args = args
        self.merchant = "sb" + uuid.uuid4().hex[:10]
        self.keys = Keys(self.merchant)
        self.redis_url = os.environ["ONHAND_REDIS_URL"]
        server = sqlalchemy_url(os.environ["ONHAND_DATABASE_URL"])
        self.dbname = f"onhand_syncbench_{self.merchant}"
        self.admin = create_engine(server, isolation_level="AUTOCOMMIT")
        self.database_url = make_url(server).set(database=self.dbname).render_as_string(hide_password=False)
        self.procs: list[subprocess.Popen] = []
        self.emu_port, self.app_port = free_port(), free_port()
        self.emu = f"http://127.0.0.1:{self.emu_port}"
        self.app = f"http://127.0.0.1:{self.app_port}"

    # ------------------------------------------------------------ setup
    def env(self) -> dict[str, str]:
        return {**os.environ, "ONHAND_REDIS_URL": self.redis_url, "ONHAND_DATABASE_URL": self.database_url,
                "ONHAND_MERCHANT": self.merchant, "ONHAND_ADMIN_KEY": ADMIN_KEY,
                "ONHAND_ALLOW_UNSAFE_REDIS": "1", "ONHAND_RATE_LIMIT_WHOLESALE": "0",
                "ONHAND_SHOPIFY_SHOP": SHOP, "ONHAND_SHOPIFY_ACCESS_TOKEN": TOKEN,
                "ONHAND_SHOPIFY_API_SECRET": SECRET, "ONHAND_SHOPIFY_API_URL": self.emu}

    def start(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.dbname}"'))
        migrate(self.database_url)
        redis = Redis.from_url(self.redis_url)
        Rebuilder(redis, create_engine(self.database_url), self.keys).run()
        redis.close()
        env = self.env()
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port", str(self.emu_port), "--shop", SHOP,
             "--access-token", TOKEN, "--api-secret", SECRET,
             "--webhook-url", f"{self.app}/webhooks/shopify"], env=env, stderr=subprocess.DEVNULL))
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
             "--port", str(self.app_port), "--workers", "1", "--loop", "uvloop", "--log-level", "warning",
             "api.app:create_default_app"], env=env))
        wait_http(f"{self.emu}/_emulator/state", 120)
        wait_http(f"{self.app}/readyz")
        self.procs.append(subprocess.Popen([sys.executable, "-m", "onhand", "worker", "--threads", "4"],
                                           env=env))

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        redis = Redis.from_url(self.redis_url)
        for pattern in (self.keys.pattern(), f"onhand-{self.merchant}*"):
            for key in redis.scan_iter(match=pattern, count=5000):
                redis.unlink(key)
        redis.close()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)'))

    # ------------------------------------------------------------ run
    def run(self) -> dict:
        a = self.args
        api = httpx.Client(base_url=self.app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
        shop = httpx.Client(base_url=f"{self.emu}/_emulator", timeout=30)
        skus = [f"BENCH-{i:03d}" for i in range(a.skus)]
        shop.post("/products", json=[{"sku": s, "available": a.units} for s in skus]).raise_for_status()
        buyer = api.post("/v1/customers", json={"name": "Bench Wholesale", "profiles": [
            {"channel": "wholesale", "backorder_policy": "backorder"}]}).json()
        for s in skus:
            api.put(f"/v1/skus/{s}", json={}).raise_for_status()
        api.post("/v1/inventory/receipts", json={"reference": "bench-start", "lines": [
            {"sku": s, "quantity": a.units} for s in skus]}).raise_for_status()
        redis = Redis.from_url(self.redis_url)
        self.settle(redis, api, shop, skus, 60)
        baseline_calls = len(shop.get("/state").json()["call_log"])

        counts = {"wholesale": 0, "receipts": 0, "sales": 0, "refused": 0, "cancels": 0}
        sold: list[int] = []
        lock = threading.Lock()
        stop = threading.Event()

        def loop(period: float, action) -> threading.Thread:
            def run() -> None:
                rng = random.Random()
                while not stop.is_set():
                    action(rng)
                    stop.wait(rng.expovariate(1 / period))
            t = threading.Thread(target=run, daemon=True)
            t.start()
            return t

        def wholesale(rng):
            api.post("/v1/orders", json={"channel": "wholesale", "customer_id": buyer["id"], "lines": [
                {"sku": rng.choice(skus), "quantity": rng.randint(1, 5)}]}).raise_for_status()
            counts["wholesale"] += 1

        def receipt(rng):
            api.post("/v1/inventory/receipts", json={"reference": f"r-{uuid.uuid4().hex}", "lines": [
                {"sku": rng.choice(skus), "quantity": rng.randint(5, 20)}]}).raise_for_status()
            counts["receipts"] += 1

        def sale(rng):
            r = shop.post("/storefront/orders", json={"lines": [
                {"sku": rng.choice(skus), "quantity": rng.randint(1, 2)}]})
            if r.status_code == 409:
                counts["refused"] += 1
                return
            r.raise_for_status()
            with lock:
                sold.append(r.json()["order"]["id"])
            counts["sales"] += 1

        def cancel(rng):
            with lock:
                if not sold:
                    return
                order_id = sold.pop(rng.randrange(len(sold)))
            if shop.post(f"/orders/{order_id}/cancel", json={"restock": True}).status_code == 200:
                counts["cancels"] += 1

        started = time.time()
        threads = [loop(1 / a.wholesale_rate, wholesale), loop(1 / a.sale_rate, sale),
                   loop(1.0, receipt), loop(1.0, cancel)]
        time.sleep(a.seconds)
        stop.set()
        for t in threads:
            t.join(30)
        last_change = time.time()
        settle_s = self.settle(redis, api, shop, skus, 120) - last_change

        state = shop.get("/state").json()
        reads = {}
        for _, fields in redis.xrange(f"{self.keys.prefix}:sync:log"):
            for e in msgspec.json.decode(fields[b"e"]):
                if e.get("set"):
                    reads[(e["key"], e["sku"])] = e
        writes = [w for w in state["set_log"] if w["time"] >= started]
        lags, violations = [], 0
        for w in writes:
            read = reads.get((w["idempotency_key"], w["sku"]))
            if read is None:
                continue
            if read.get("dirty_at"):
                lags.append(w["time"] * 1000 - read["dirty_at"])

            if w["quantity"] > max(0, read["available"] - w["undelivered_sales"]):
                violations += 1
        calls = state["call_log"][baseline_calls:]
        webhooks = sum(1 for x in state["webhook_attempts"] if x["sent_at"] >= started)
        changes = sum(v for k, v in counts.items() if k != "refused") + webhooks
        result = {
            "seconds": a.seconds, "skus": a.skus, "changes": changes, "counts": counts,
            "webhook_deliveries": webhooks,
            "writes": len(writes), "graphql_calls": len(calls),
            "calls_per_change": round(len(calls) / max(1, changes), 3),
            "lag_ms": {"p50": round(percentile(lags, 0.5), 1), "p99": round(percentile(lags, 0.99), 1),
                       "max": round(max(lags), 1) if lags else None, "n": len(lags)},
            "settle_after_last_change_s": round(settle_s, 3),
            "max_requested_cost": max((c["requested_cost"] or 0) for c in calls) if calls else 0,
            "throttled_calls": sum(1 for c in calls if c["throttled"]),
            "non_200_calls": sum(1 for c in calls if c["status_code"] != 200),
            "validation_failures": len(state["validation_failures"]),
            "writes_above_bound": violations,
        }
        redis.close()
        api.close()
        shop.close()
        return result

    def settle(self, redis: Redis, api: httpx.Client, shop: httpx.Client, skus: list[str],
               timeout_s: float) -> float:
        """Waits until every webhook is delivered, the sync has nothing left to
        do, and Shopify equals onhand for every SKU; returns when that was
        first seen (epoch seconds)."""
        deadline = time.monotonic() + timeout_s
        p = self.keys.prefix
        while time.monotonic() < deadline:
            # onhand's side first (cheap); the emulator's whole state only then:
            # building it holds the emulator's loop, which would slow the sync measured
            if (redis.scard(self.keys.dirty) or redis.zcard(f"{p}:sync:inflight")
                    or redis.zcard(f"{p}:sync:due")):
                time.sleep(0.02)
                continue
            seen = time.time()
            state = shop.get("/state").json()
            if all(w["status"] == "delivered" for w in state["webhooks"]):
                onhand = {}
                for i in range(0, len(skus), 100):
                    r = api.get("/v1/inventory", params=[("sku", s) for s in skus[i:i + 100]])
                    r.raise_for_status()
                    onhand.update({item["sku"]: item["available"] for item in r.json()["items"]})
                if all(state["inventory"][s]["available"] == onhand[s] for s in skus):
                    return seen
            time.sleep(0.3)
        raise RuntimeError("Shopify did not settle on onhand's available")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.shopify_sync_bench", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--skus", type=int, default=20)
    p.add_argument("--units", type=int, default=200)
    p.add_argument("--sale-rate", type=float, default=20.0, help="storefront purchases per second")
    p.add_argument("--wholesale-rate", type=float, default=5.0, help="wholesale orders per second")
    p.add_argument("--out", type=Path, default=None, help="write the result as JSON here too")
    args = p.parse_args(argv)
    bench = Bench(args)
    try:
        bench.start()
        result = bench.run()
    finally:
        bench.stop()
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0 if result["writes_above_bound"] == 0 and result["validation_failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
