"""`onhand bench ui`: the staff UI's reads at a merchant's size.

50,000 SKUs and 200,000 orders (with customers, PO numbers, shipments and
their tracking numbers) are made through the real Lua scripts and drained
into PostgreSQL by the real outbox drainer; then a real `onhand serve`
(granian, one API process, one worker) serves the UI and one client, signed
in as a user, times, one request at a time:

- order search (goal p95 < 200 ms): an exact PO (answered by a redirect to
  the order), an order number, a customer's company, a SKU, a tracking
  number, and a filtered list (wholesale, open) - 25 rows each;
- SKU autocomplete (goal p95 < 100 ms): a prefix of a SKU, a name or a UPC;
- order detail (goal p95 < 1 s): the page with lines, shipments and the
  timeline from the ledger.

Side by side, in the same run, the same reads through the HTTP API where it
has one (`GET /v1/orders?po_number=`, `GET /v1/orders/{id}`,
`GET /v1/inventory/{sku}`): what the UI adds to the engine's own reads.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
from redis import Redis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis

from engine.commands import Op, OrderLineRequest, PlaceOrder, PutRecord, PutSku, ReceiveStock, ShipOrder, SkuQty
from engine.keys import Keys
from engine.store import Store
from loadtests.stack import ADMIN_KEY, Service, forget_merchant, servers
from onhand.settings import Settings
from persistence.db import make_engine, migrate
from workers.outbox import Drainer

_encode = msgspec.json.Encoder()
MERCHANT = "uibench"
EMAIL, PASSWORD = "bench@example.com", "bench password 0123"
#: Requests timed per kind of read.
SAMPLES = 200
GOALS_MS = {"order search": 200, "SKU autocomplete": 100, "order detail": 1000}


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def populate(redis_url: str, *, skus: int, orders: int, customers: int) -> dict:
    """Makes the merchant through the scripts; returns what the reads will ask for."""
    redis = AsyncRedis(connection_pool=BlockingConnectionPool.from_url(redis_url, max_connections=32))
    store = Store(redis, MERCHANT)
    await store.start()
    await redis.set(store.keys.epoch, "bench")
    now = int(time.time() * 1000)
    op = Op(op_id="setup", now_ms=now, actor="bench")
    words = ["tee", "mug", "cap", "sock", "tote", "hoodie", "scarf", "glove", "pin", "patch"]
    names = [f"SKU-{i:05d}" for i in range(skus)]
    for i in range(0, skus, 1000):
        await asyncio.gather(*(store.run(PutSku(sku=s, meta={
            "name": f"{words[n % len(words)]} {n:05d}", "upc": f"{400000000000 + n:012d}", "case_pack": 12}), op)
            for n, s in enumerate(names[i:i + 1000], start=i)))
        if i % 10_000 == 0:
            _say(f"  SKUs {i:,}/{skus:,}")
    for i in range(0, skus, 2000):
        await store.run(ReceiveStock(receipt_id=f"r{i}", lines=tuple(SkuQty(sku=s, qty=100)
                                                                      for s in names[i:i + 2000])), op)
    companies = []
    for c in range(customers):
        cid, company = f"cus_bench{c:05d}", f"Retailer {c:05d} Ltd"
        companies.append(company)
        doc = {"id": cid, "name": f"Buyer {c}", "company": company, "account_number": f"AC-{c:05d}",
               "email": f"buyer{c}@retail{c}.example", "phone": None, "created_at_ms": now,
               "profiles": [{"id": f"prf_bench{c:05d}", "channel": "wholesale", "payment_terms": "net_30"}]}
        await store.run(PutRecord(kind="customer", id=cid, doc=_encode.encode(doc).decode()), op)
    pos, ids, tracking = [], [], []
    for start in range(0, orders, 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(start, min(start + 1000, orders)):
                wholesale = n % 3 != 0
                header = {"created_at_ms": now, "source": "bench"}
                if wholesale:
                    c = n % customers
                    header.update(customer_id=f"cus_bench{c:05d}", po_number=f"PO-{n:07d}",
                                  payment_terms="net_30", profile_id=f"prf_bench{c:05d}")
                lines = tuple(OrderLineRequest(sku=names[(n * 7919 + k * 104729) % skus], qty=1 + (n + k) % 3)
                              for k in range(1 + n % 3))
                cmd = PlaceOrder(order_id=f"ord_bench{n:07d}", channel="wholesale" if wholesale else "dtc",
                                 policy="backorder" if wholesale else "accept", lines=lines,
                                 doc=_encode.encode(header).decode())
                pipe.fcall("onhand_reserve", 1, store.keys.prefix, f"p{n}", "", 0, now, "bench",
                           _encode.encode(cmd.payload()), 1000)
                ids.append(cmd.order_id)
                if wholesale:
                    pos.append(header["po_number"])
            await pipe.execute()
        if start % 50_000 == 0:
            _say(f"  orders {start:,}/{orders:,}")
    # a shipment (with its tracking number) for every 20th order
    for i in range(0, len(ids), 20):
        order = await store.order(ids[i])
        lines = tuple(SkuQty(sku=line.sku, qty=line.reserved) for line in order.lines if line.reserved)
        if not lines:
            continue
        number = f"1ZBENCH{i:08d}"
        tracking.append(number)
        await store.run(ShipOrder(order_id=ids[i], lines=lines, shipment={
            "id": f"shp_bench{i:07d}", "method": "parcel", "carrier": "UPS", "tracking_number": number}), op)
    await redis.aclose()
    return {"pos": pos, "ids": ids, "tracking": tracking, "companies": companies, "skus": names,
            "words": words}


def drain(redis: Redis, database_url: str) -> float:
    engine = make_engine(database_url)
    keys = Keys(MERCHANT)
    drainer = Drainer(redis, engine, keys, slot=0)
    total = redis.xlen(keys.outbox)
    started = time.monotonic()
    while redis.xlen(keys.outbox):
        drainer.run_for(10.0)
        _say(f"  drained into PostgreSQL: {total - redis.xlen(keys.outbox):,}/{total:,} events")
    engine.dispose()
    return time.monotonic() - started


def sign_in(client: httpx.Client) -> None:
    page = client.get("/ui/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/ui/login", data={"email": EMAIL, "password": PASSWORD, "_csrf_token": token})
    assert r.status_code == 303, r.text


def timed(client: httpx.Client, urls: list[str], *, headers: dict | None = None) -> list[float]:
    out = []
    for url in urls:
        started = time.perf_counter()
        r = client.get(url, headers=headers)
        elapsed = time.perf_counter() - started
        if r.status_code not in (200, 303):
            raise RuntimeError(f"GET {url}: {r.status_code} {r.text[:300]}")
        out.append(elapsed * 1000)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=100)
    return {"n": len(ms), "p50": statistics.median(ms), "p95": q[94], "p99": q[98], "max": max(ms)}


def measure(base_url: str, data: dict, rng: random.Random) -> dict[str, dict[str, list[float]]]:
    with httpx.Client(base_url=base_url, timeout=30, follow_redirects=False) as ui, \
            httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:
        sign_in(ui)
        n = SAMPLES
        pick = lambda seq: [rng.choice(seq) for _ in range(n)]  # noqa: E731
        numbers = [str(1 + rng.randrange(len(data["ids"]))) for _ in range(n)]
        searches = {
            "exact PO": [f"/ui/orders?q={p}" for p in pick(data["pos"])],
            "order number": [f"/ui/orders?q={x}" for x in numbers],
            "customer": [f"/ui/orders?q={c.replace(' ', '+')}" for c in pick(data["companies"])],
            "SKU": [f"/ui/orders?q={s}" for s in pick(data["skus"])],
            "tracking number": [f"/ui/orders?q={t}" for t in pick(data["tracking"])],
            "filtered list": [f"/ui/orders?channel=wholesale&status=open&offset={rng.randrange(0, 2000)}"
                              for _ in range(n)],
        }
        prefixes = ([s[:7] for s in pick(data["skus"])] + [f"{w} 0" for w in pick(data["words"])]
                    + [f"40000000{rng.randrange(1000, 9999)}" for _ in range(n)])
        rng.shuffle(prefixes)
        details = [f"/ui/orders/{i}" for i in pick(data["ids"])]
        # warm-up (connections, the first template renders)
        timed(ui, details[:10] + [f"/ui/lookup/skus?q={p}" for p in prefixes[:10]] + searches["SKU"][:10])
        out = {"order search": {k: timed(ui, v) for k, v in searches.items()},
               "SKU autocomplete": {"prefix": timed(ui, [f"/ui/lookup/skus?q={p}" for p in prefixes[:n * 2]])},
               "order detail": {"page": timed(ui, details)}}
        baseline = {
            "order search": {"API: GET /v1/orders?po_number=": timed(api, [
                f"/v1/orders?po_number={p}&limit=25" for p in pick(data["pos"])])},
            "SKU autocomplete": {"API: GET /v1/inventory/{sku} (exact)": timed(api, [
                f"/v1/inventory/{s}" for s in pick(data["skus"])])},
            "order detail": {"API: GET /v1/orders/{id}": timed(api, [f"/v1/orders/{i}" for i in pick(data["ids"])])},
        }
        return {"ui": out, "baseline": baseline}


def report(results: dict, sizes: dict, setup: dict) -> str:
    lines = ["# Staff UI benchmark", "",
             f"`onhand bench ui`: {sizes['skus']:,} SKUs, {sizes['orders']:,} orders ({sizes['customers']:,} "
             f"customers, a shipment with a tracking number on every 20th order), made through the Lua scripts "
             f"in {setup['populate_s']:.0f} s and drained into PostgreSQL in {setup['drain_s']:.0f} s; then one "
             f"signed-in client, one request at a time, against `onhand serve` (one API process, one worker). "
             f"{SAMPLES} requests per kind. Load average before the reads: {setup['load_before']}, after: "
             f"{setup['load_after']} ({os.cpu_count()} cores).", "",
             "| read | kind | n | p50 ms | p95 ms | p99 ms | max ms | goal (p95) |", "|---|---|---|---|---|---|---|---|"]
    for side in ("ui", "baseline"):
        for read, kinds in results[side].items():
            everything = [x for ms in kinds.values() for x in ms]
            for kind, ms in kinds.items():
                s = summary(ms)
                goal = f"< {GOALS_MS[read]}" if side == "ui" else "(baseline)"
                lines.append(f"| {read} | {kind} | {s['n']} | {s['p50']:.1f} | {s['p95']:.1f} | {s['p99']:.1f} | "
                             f"{s['max']:.1f} | {goal} |")
            if side == "ui" and len(kinds) > 1:
                s = summary(everything)
                ok = "met" if s["p95"] < GOALS_MS[read] else "MISSED"
                lines.append(f"| {read} | **all kinds** | {s['n']} | {s['p50']:.1f} | **{s['p95']:.1f}** | "
                             f"{s['p99']:.1f} | {s['max']:.1f} | < {GOALS_MS[read]}: {ok} |")
    return "\n".join(lines) + "\n"


def verdicts(results: dict) -> dict[str, float]:
    return {read: summary([x for ms in kinds.values() for x in ms])["p95"] for read, kinds in results["ui"].items()}


def ui_bench(settings: Settings, *, skus: int = 50_000, orders: int = 200_000, customers: int = 2_000,
             out: str = "bench-report", quick: bool = False) -> int:
    if quick:
        skus, orders, customers = 2_000, 5_000, 200
    sizes = {"skus": skus, "orders": orders, "customers": customers}
    workdir = Path(tempfile.mkdtemp(prefix="onhand-ui-bench-"))
    workdir.chmod(0o755)
    with servers(settings, workdir) as found:
        forget_merchant(Redis.from_url(found.redis_url), MERCHANT)
        migrate(found.onhand_database_url)
        _say(f"creating {skus:,} SKUs, {customers:,} customers and {orders:,} orders through the scripts")
        started = time.monotonic()
        data = asyncio.run(populate(found.redis_url, skus=skus, orders=orders, customers=customers))
        populate_s = time.monotonic() - started
        redis = Redis.from_url(found.redis_url)
        drain_s = drain(redis, found.onhand_database_url)
        service = Service("onhand", found, workdir, merchant=MERCHANT, extra_env={
            "ONHAND_ADMIN_EMAIL": EMAIL, "ONHAND_ADMIN_PASSWORD": PASSWORD, "ONHAND_ALLOW_UNSAFE_REDIS": "1"})
        service.start()
        try:
            load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
            _say("timing the UI's reads")
            results = measure(service.url, data, random.Random(5))
            load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
        finally:
            service.stop()
            redis.close()
    text = report(results, sizes, {"populate_s": populate_s, "drain_s": drain_s, "load_before": load_before,
                                   "load_after": load_after})
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ui.md").write_text(text)
    print(text)
    missed = {read: p95 for read, p95 in verdicts(results).items() if p95 >= GOALS_MS[read]}
    for read, p95 in missed.items():
        _say(f"goal missed: {read} p95 {p95:.0f} ms (goal < {GOALS_MS[read]} ms)")
    return 0
