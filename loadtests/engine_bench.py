"""`onhand bench engine`: reservations per second of the Lua engine itself.

No HTTP here: the Store and its scripts against a Valkey this benchmark
starts (AOF on, appendfsync always, as production runs), for a hot SKU and
for spread SKUs, single- and 10-line orders, in three client shapes:

- ``store.run``: one awaited script call per order, many concurrent tasks
  (what the API does per request);
- pipelined: the same scripts, 64 calls per round trip (the client side's
  ceiling in one Python process);
- two client processes pipelining, to find Redis's own ceiling.

Side by side in the same run, the baseline of the same machine: a bare
``PING`` per call, unpipelined and pipelined (what one asyncio process can
drive at all). Redis's CPU per call comes from INFO commandstats. Memory per
SKU and per open reservation line are measured on 10,000 SKUs and 100,000
open one-line orders.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec
from redis.asyncio import BlockingConnectionPool, Redis

from engine import scripts
from engine.commands import Op, OrderLineRequest, PlaceOrder, PutSku, ReceiveStock, SkuQty
from engine.store import Store
from onhand.embedded import start_valkey

CONCURRENCY = 64
PIPELINE = 64
SPREAD_SKUS = 10_000
_encode = msgspec.json.Encoder()


@dataclass
class Row:
    scenario: str
    client: str
    orders: int
    seconds: float
    redis_us_per_call: float
    client_cpu_s: float

    @property
    def rate(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0


def _progress(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def _order(n: int, lines: int, hot: bool) -> PlaceOrder:
    if hot and lines == 1:
        skus = ["HOT"]
    elif hot:
        skus = ["HOT"] + [f"S{(n * 7 + i) % SPREAD_SKUS:05d}" for i in range(1, lines)]
    else:
        skus = [f"S{(n * 7919 + i * 104729) % SPREAD_SKUS:05d}" for i in range(lines)]
    return PlaceOrder(order_id=f"o{n}x{uuid.uuid4().hex[:6]}", channel="dtc", policy="all_or_nothing",
                      lines=tuple(OrderLineRequest(sku=s, qty=1) for s in dict.fromkeys(skus)))


async def _setup(store: Store) -> None:
    redis = store.redis
    await redis.flushall()
    await redis.set(store.keys.epoch, "bench")
    op = Op(op_id="setup", now_ms=int(time.time() * 1000), actor="bench")
    skus = ["HOT"] + [f"S{i:05d}" for i in range(SPREAD_SKUS)]
    for i in range(0, len(skus), 500):
        await asyncio.gather(*(store.run(PutSku(sku=s), op) for s in skus[i:i + 500]))
    for i in range(0, len(skus), 2000):
        await store.run(ReceiveStock(receipt_id=f"r{i}", lines=tuple(
            SkuQty(sku=s, qty=10**8) for s in skus[i:i + 2000])), op)


async def _usec_per_call(redis: Redis, command: str = "evalsha") -> float:
    stats = await redis.info("commandstats")
    entry = stats.get(f"cmdstat_{command}") or {}
    return float(entry.get("usec_per_call", 0.0))


async def _run_unpipelined(store: Store, n: int, lines: int, hot: bool) -> tuple[int, float, float]:
    counter = iter(range(n))
    now = int(time.time() * 1000)

    async def worker() -> None:
        for i in counter:
            await store.run(_order(i, lines, hot), Op(op_id=f"b{i}", now_ms=now, actor="bench"))

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return n, time.perf_counter() - t0, time.process_time() - cpu0


async def _run_pipelined(store: Store, n: int, lines: int, hot: bool, offset: int = 0) -> tuple[int, float, float]:
    """Same scripts, PIPELINE calls per round trip, 8 pipelines in flight."""
    fn = scripts.function_name("reserve")
    now = int(time.time() * 1000)
    batches = iter(range(offset, offset + n, PIPELINE))

    async def worker() -> None:
        for start in batches:
            async with store.redis.pipeline(transaction=False) as pipe:
                for i in range(start, min(start + PIPELINE, offset + n)):
                    cmd = _order(i, lines, hot)
                    pipe.fcall(fn, 1, store.keys.prefix, f"p{i}", "", 0, now, "bench",
                                 _encode.encode(cmd.payload()), store.fill_limit)
                for body, _replayed, _eid in await pipe.execute():
                    if b'"c":"ok"' not in body:
                        raise RuntimeError(body[:200])

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    return n, time.perf_counter() - t0, time.process_time() - cpu0


async def _ping(redis: Redis, n: int, pipelined: bool) -> tuple[int, float, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    if pipelined:
        async def worker(batches) -> None:
            for _ in batches:
                async with redis.pipeline(transaction=False) as pipe:
                    for _ in range(PIPELINE):
                        pipe.ping()
                    await pipe.execute()
        it = iter(range(n // PIPELINE))
        await asyncio.gather(*(worker(it) for _ in range(8)))
    else:
        it = iter(range(n))

        async def one() -> None:
            for _ in it:
                await redis.ping()
        await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
    return n, time.perf_counter() - t0, time.process_time() - cpu0


def _child_pipelined(url: str, merchant: str, n: int, lines: int, hot: bool, offset: int, q) -> None:
    async def main():
        redis = Redis.from_url(url)
        store = Store(redis, merchant)
        await store.start()
        q.put(await _run_pipelined(store, n, lines, hot, offset))
        await redis.aclose()
    asyncio.run(main())


async def _two_processes(url: str, merchant: str, n: int, lines: int, hot: bool) -> tuple[int, float, float]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_child_pipelined, args=(url, merchant, n // 2, lines, hot, k * 10**7, q))
             for k in range(2)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(r[0] for r in results), time.perf_counter() - t0, sum(r[2] for r in results)


async def _memory(url: str) -> tuple[float, float, float]:
    """On a fresh server: bytes per SKU (10,000 SKUs with details), per open
    reservation line of one-line orders, and per line of ten-line orders
    (100,000 lines each; outbox and idempotency records excluded, as the
    drain removes the former and the latter expire)."""
    redis = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=32))
    store = Store(redis, "mem")
    await store.start()
    await redis.set(store.keys.epoch, "bench")
    op = Op(op_id="m", now_ms=int(time.time() * 1000), actor="bench")

    async def used() -> int:
        await redis.delete(store.keys.outbox, store.keys.dirty, store.keys.unsynced)
        # Valkey frees deleted keys in the background (lazyfree-lazy-user-del):
        # read the figure once nothing is left to free, or the outbox just
        # deleted is still counted
        while True:
            info = await redis.info("memory")
            if not int(info.get("lazyfree_pending_objects", 0)):
                return info["used_memory"]
            await asyncio.sleep(0.05)

    base = await used()
    skus = [f"MEM-{i:05d}" for i in range(SPREAD_SKUS)]
    for i in range(0, len(skus), 500):
        await asyncio.gather(*(store.run(PutSku(sku=s, meta={"name": f"Item {s}", "case_pack": 12}), op)
                               for s in skus[i:i + 500]))
    for i in range(0, len(skus), 5000):
        await store.run(ReceiveStock(receipt_id=f"mem{i}", lines=tuple(
            SkuQty(sku=s, qty=10**6) for s in skus[i:i + 5000])), op)
    with_skus = await used()
    # what POST /v1/orders keeps for a DTC order with a price (api/orders.py)
    doc = _encode.encode({"created_at_ms": op.now_ms, "lines": [{"unit_price": "19.00"}]}).decode()

    async def orders(count: int, lines: int, tag: str) -> None:
        for start in range(0, count, 1000 // lines * lines):
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(start, min(start + 1000 // lines * lines, count)):
                    cmd = PlaceOrder(order_id=f"ord_{tag}{i:015d}", channel="dtc", policy="all_or_nothing", doc=doc,
                                     lines=tuple(OrderLineRequest(sku=skus[(i * 10 + k) % len(skus)], qty=1)
                                                 for k in range(lines)))
                    pipe.fcall(scripts.function_name("reserve"), 1, store.keys.prefix, f"{tag}{i}", "", 0, op.now_ms, "bench",
                               _encode.encode(cmd.payload()), 1000)
                await pipe.execute()
            if start % 20_000 == 0:
                await redis.delete(store.keys.outbox, store.keys.unsynced)

    await orders(100_000, 1, "a")
    with_one_line = await used()
    await orders(10_000, 10, "b")
    with_ten_line = await used()
    await redis.aclose()
    return ((with_skus - base) / len(skus), (with_one_line - with_skus) / 100_000,
            (with_ten_line - with_one_line) / 100_000)


async def _bench(url: str, orders: int) -> tuple[list[Row], dict]:
    redis = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=CONCURRENCY + 16))
    store = Store(redis, "bench")
    await store.start()
    rows: list[Row] = []
    try:
        info = await redis.info("server")
        for name, lines, hot in (("hot SKU, 1 line", 1, True), ("spread SKUs, 1 line", 1, False),
                                 ("hot SKU + 9 spread, 10 lines", 10, True),
                                 ("spread SKUs, 10 lines", 10, False)):
            n = orders if lines == 1 else orders // 4
            for client, runner in (("store.run, 64 tasks", _run_unpipelined),
                                   ("pipelined x64", _run_pipelined),
                                   ("2 processes pipelined", None)):
                _progress(f"{name} / {client}: setting up")
                await _setup(store)
                await redis.config_resetstat()
                if runner is None:
                    done, secs, cpu = await _two_processes(url, "bench", n, lines, hot)
                else:
                    done, secs, cpu = await runner(store, n, lines, hot)
                row = Row(name, client, done, secs, await _usec_per_call(redis, "fcall"), cpu)
                rows.append(row)
                _progress(f"{name} / {client}: {row.rate:,.0f} orders/s "
                          f"(Redis {row.redis_us_per_call:.1f} us/call)")
        for client, pipelined in (("PING, 64 tasks", False), ("PING pipelined x64", True)):
            await redis.config_resetstat()
            done, secs, cpu = await _ping(redis, orders, pipelined)
            rows.append(Row("baseline: bare PING", client, done, secs, await _usec_per_call(redis, "ping"), cpu))
            _progress(f"PING / {client}: {done / secs:,.0f}/s")
        return rows, info
    finally:
        await redis.aclose()


def render(rows: list[Row], memory: tuple[float, float, float], info: dict, orders: int) -> str:
    out = [
        "# Engine benchmark",
        "",
        f"`onhand bench engine --orders {orders}`: Valkey {info.get('valkey_version') or info.get('redis_version')}"
        " with AOF `appendfsync always`, one merchant, all_or_nothing DTC orders of 1 unit per line, "
        f"{os.cpu_count()} CPUs shared by client and server.",
        "",
        "| scenario | client | orders | orders/s | Redis us/call | client CPU s | client CPU / order (us) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per = 1e6 * r.client_cpu_s / r.orders if r.orders else 0
        out.append(f"| {r.scenario} | {r.client} | {r.orders:,} | {r.rate:,.0f} | {r.redis_us_per_call:.1f} | "
                   f"{r.client_cpu_s:.1f} | {per:.0f} |")
    out += ["", "Memory (a fresh server, `used_memory` deltas): "
                f"{memory[0]:.0f} bytes per SKU (counters and details); per open reservation line "
                f"{memory[1]:.0f} bytes for one-line orders (order hash, its line, the per-SKU queue entry) and "
                f"{memory[2]:.0f} bytes for ten-line orders; outbox entries (removed by the drain) and "
                "idempotency records (expiring) excluded.", ""]
    return "\n".join(out)


def main(settings, *, orders: int = 200_000, out: str = "bench-report") -> int:
    path = Path(tempfile.mkdtemp(prefix="onhand-bench-"))
    path.chmod(0o755)
    print(f"starting Valkey (AOF always) in {path}", file=sys.stderr)
    server = start_valkey(path, maxmemory_bytes=4 * 1024**3)
    try:
        rows, info = asyncio.run(_bench(server.url, orders))
    finally:
        server.stop()
    _progress("memory: 10,000 SKUs, then 100,000 open lines as one-line and as ten-line orders")
    fresh = start_valkey(path / "memory", maxmemory_bytes=4 * 1024**3)  # as `serve` configures it
    try:
        memory = asyncio.run(_memory(fresh.url))
    finally:
        fresh.stop()
    report = render(rows, memory, info, orders)
    Path(out).mkdir(parents=True, exist_ok=True)
    target = Path(out) / "engine.md"
    target.write_text(report)
    print(report)
    print(f"written to {target}", file=sys.stderr)
    return 0
