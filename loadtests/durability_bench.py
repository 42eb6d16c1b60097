"""`onhand bench rebuild` and `onhand bench lag`: the two durability figures.

rebuild: how long Redis takes to come back from PostgreSQL after losing
everything, for 10,000 SKUs and 100,000 open reservations (goal: under 30 s
on a 2-core machine). The state is created through the real scripts, drained
by the real outbox drainer, Redis is emptied, and the rebuild is timed; the
rebuilt counters are compared with the ones before the wipe.

lag: how far PostgreSQL trails Redis. The maximum order rate of the engine is
measured first; then orders are sent open loop (each at its scheduled time) at
50% of it while `onhand worker` processes drain the outbox, and each event's
lag is its commit time in PostgreSQL minus its outbox entry time.

Both start their own Valkey (AOF, appendfsync always) and PostgreSQL (fsync
on, synchronous_commit on) from the embedded packages.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import msgspec
from redis import Redis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import text

from engine import scripts
from engine.commands import Op, OrderLineRequest, PlaceOrder, PutSku, ReceiveStock, SkuQty
from engine.keys import Keys
from engine.store import Store
from onhand.embedded import start_postgres, start_valkey
from persistence.db import make_engine, migrate
from persistence.rebuild import Rebuilder
from workers.outbox import Drainer

_encode = msgspec.json.Encoder()


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def _servers():
    path = Path(tempfile.mkdtemp(prefix="onhand-durability-bench-"))
    path.chmod(0o755)
    valkey = start_valkey(path / "valkey", maxmemory_bytes=4 * 1024**3)
    pg = start_postgres(path / "pg", fsync=True)
    try:
        migrate(pg.url)
        yield valkey.url, pg.url
    finally:
        pg.stop()
        valkey.stop()


async def _populate(url: str, merchant: str, skus: int, orders: int) -> None:
    redis = AsyncRedis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=16))
    store = Store(redis, merchant)
    await store.start()
    await redis.set(store.keys.epoch, "bench")
    op = Op(op_id="setup", now_ms=int(time.time() * 1000), actor="bench")
    names = [f"SKU-{i:05d}" for i in range(skus)]
    for i in range(0, skus, 500):
        await asyncio.gather(*(store.run(PutSku(sku=s, meta={"name": s, "case_pack": 12}), op)
                               for s in names[i:i + 500]))
    for i in range(0, skus, 2000):
        await store.run(ReceiveStock(receipt_id=f"r{i}", lines=tuple(SkuQty(sku=s, qty=1000)
                                                                      for s in names[i:i + 2000])), op)
    header = _encode.encode({"source": "bench", "created_at_ms": op.now_ms}).decode()
    for start in range(0, orders, 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(start, min(start + 1000, orders)):
                cmd = PlaceOrder(order_id=f"o{n:06d}", channel="wholesale" if n % 3 else "dtc",
                                 policy="backorder", doc=header,
                                 lines=(OrderLineRequest(sku=names[(n * 7919) % skus], qty=1 + n % 3),))
                pipe.fcall(scripts.function_name("reserve"), 1, store.keys.prefix, f"p{n}", "", 0, op.now_ms, "bench",
                           _encode.encode(cmd.payload()), 1000)
            await pipe.execute()
        if start % 20_000 == 0:
            _say(f"  created {start:,}/{orders:,} orders")
    await redis.aclose()


def _drain(redis: Redis, engine, keys: Keys) -> None:
    drainer = Drainer(redis, engine, keys, slot=0)
    total = redis.xlen(keys.outbox)
    while redis.xlen(keys.outbox):
        drainer.run_for(5.0)
        _say(f"  drained into PostgreSQL: {total - redis.xlen(keys.outbox):,}/{total:,} events")


def _counters(redis: Redis, keys: Keys) -> dict[str, tuple]:
    names = [m.decode() for m in redis.zrange(keys.skus, 0, -1)]
    with redis.pipeline(transaction=False) as pipe:
        for sku in names:
            pipe.hmget(keys.sku(sku), "oh", "rd", "rw", "bd", "bw", "ex", "fence")
        return dict(zip(names, [tuple(r) for r in pipe.execute()], strict=True))


def rebuild_bench(*, skus: int = 10_000, orders: int = 100_000, out: str = "bench-report") -> int:
    merchant = "rebuild"
    with _servers() as (redis_url, database_url):
        redis = Redis.from_url(redis_url)
        keys = Keys(merchant)
        engine = make_engine(database_url)
        _say(f"creating {skus:,} SKUs and {orders:,} open orders through the scripts")
        t0 = time.monotonic()
        asyncio.run(_populate(redis_url, merchant, skus, orders))
        _say(f"  done in {time.monotonic() - t0:.1f} s; draining the outbox into PostgreSQL")
        t0 = time.monotonic()
        _drain(redis, engine, keys)
        drain_s = time.monotonic() - t0
        before = _counters(redis, keys)
        used_before = redis.info("memory")["used_memory"]
        _say("emptying Redis (FLUSHALL) and rebuilding it from PostgreSQL")
        redis.flushall()
        started = time.monotonic()
        report = Rebuilder(redis, engine, keys, progress=lambda stage, done, total: _say(
            f"  rebuild: {stage} {done:,}/{total:,}")).run()
        seconds = time.monotonic() - started
        after = _counters(redis, keys)
        open_lines = report.open_lines
        engine.dispose()
    same = before == after
    text_out = "\n".join([
        "# Rebuild benchmark",
        "",
        f"`onhand bench rebuild`: {skus:,} SKUs and {orders:,} open one-line orders (reserved or "
        "backordered), created through the Lua scripts and drained into PostgreSQL "
        f"({drain_s:.1f} s for {orders + skus // 500 + skus // 2000:,} events), then Redis emptied.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| rebuild time (goal < 30 s) | {seconds:.1f} s |",
        f"| SKUs restored | {report.skus:,} |",
        f"| orders restored | {report.orders:,} |",
        f"| open lines restored into the per-SKU queues | {open_lines:,} |",
        f"| counters identical to before the wipe | {'yes' if same else 'NO'} |",
        f"| Redis used memory before the wipe | {used_before / 1024**2:.0f} MiB |",
        "",
    ])
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "rebuild.md").write_text(text_out)
    print(text_out)
    return 0 if same else 1


async def _max_rate(store: Store, seconds: float) -> float:
    deadline = time.monotonic() + seconds
    done = 0

    async def client(c: int) -> None:
        nonlocal done
        n = 0
        while time.monotonic() < deadline:
            n += 1
            await store.run(PlaceOrder(order_id=f"m{c}x{n}x{uuid.uuid4().hex[:4]}", channel="dtc",
                                       policy="backorder", lines=(OrderLineRequest(sku=f"L{n % 100}", qty=1),)),
                            Op(op_id=f"m{c}-{n}", now_ms=int(time.time() * 1000), actor="bench"))
            done += 1

    t0 = time.monotonic()
    await asyncio.gather(*(client(c) for c in range(32)))
    return done / (time.monotonic() - t0)


async def _open_loop(store: Store, rate: float, seconds: float) -> int:
    interval = 1.0 / rate
    start = time.monotonic()
    total = int(rate * seconds)
    sem = asyncio.Semaphore(256)

    async def one(n: int) -> None:
        async with sem:
            await store.run(PlaceOrder(order_id=f"l{n}x{uuid.uuid4().hex[:4]}", channel="dtc", policy="backorder",
                                       lines=(OrderLineRequest(sku=f"L{n % 100}", qty=1),)),
                            Op(op_id=f"l-{n}", now_ms=int(time.time() * 1000), actor="bench"))

    tasks = []
    for n in range(total):
        delay = start + n * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    return total


def lag_bench(*, seconds: float = 20.0, out: str = "bench-report") -> int:
    merchant = "lag"
    with _servers() as (redis_url, database_url):
        redis = Redis.from_url(redis_url)
        keys = Keys(merchant)
        engine = make_engine(database_url)
        Rebuilder(redis, engine, keys).run()

        async def measure() -> tuple[float, float, int]:
            ar = AsyncRedis(connection_pool=BlockingConnectionPool.from_url(redis_url, max_connections=300))
            store = Store(ar, merchant)
            await store.start()
            op = Op(op_id="s", now_ms=int(time.time() * 1000), actor="bench")
            for i in range(100):
                await store.run(PutSku(sku=f"L{i}"), op)
            await store.run(ReceiveStock(receipt_id="r", lines=tuple(SkuQty(sku=f"L{i}", qty=10**8)
                                                                      for i in range(100))), op)
            _say("measuring the engine's maximum order rate (32 clients, 5 s, no drain running)")
            peak = await _max_rate(store, 5.0)
            return peak, 0.0, 0

        peak, _, _ = asyncio.run(measure())
        _say(f"  maximum: {peak:,.0f} orders/s; draining that backlog before the timed run")
        _drain(redis, engine, keys)
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE applied_events"))
        env = {**os.environ, "ONHAND_REDIS_URL": redis_url, "ONHAND_DATABASE_URL": database_url,
               "ONHAND_MERCHANT": merchant}
        workers = [subprocess.Popen([sys.executable, "-m", "onhand", "worker", "--threads", "4"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        target = peak * 0.5
        try:
            time.sleep(2.0)
            _say(f"sending {target:,.0f} orders/s open loop for {seconds:.0f} s while `onhand worker` drains")

            async def run_load() -> int:
                ar = AsyncRedis(connection_pool=BlockingConnectionPool.from_url(redis_url, max_connections=300))
                store = Store(ar, merchant)
                await store.start()
                sent = await _open_loop(store, target, seconds)
                await ar.aclose()
                return sent

            t0 = time.monotonic()
            sent = asyncio.run(run_load())
            achieved = sent / (time.monotonic() - t0)
            deadline = time.monotonic() + 120
            while redis.xlen(keys.outbox) and time.monotonic() < deadline:
                time.sleep(0.2)
            backlog_left = redis.xlen(keys.outbox)
        finally:
            for w in workers:
                w.terminate()
                w.wait(30)
        with engine.connect() as conn:
            rows = conn.execute(text(
                "select event_id, extract(epoch from applied_at) * 1000 from applied_events")).all()
        engine.dispose()
    lags = sorted(float(ms) - int(eid.split("-")[0]) for eid, ms in rows)
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] if lags else float("nan")
    text_out = "\n".join([
        "# PostgreSQL lag benchmark",
        "",
        f"`onhand bench lag`: the engine's maximum order rate measured first ({peak:,.0f} orders/s, "
        f"32 asyncio clients, Valkey AOF always), then {seconds:.0f} s open loop at 50% of it "
        f"({target:,.0f}/s scheduled, {achieved:,.0f}/s achieved) with one `onhand worker` process "
        "(4 threads, 2 drain slots) writing to PostgreSQL (fsync on, synchronous_commit on).",
        "",
        "| lag from outbox entry to PostgreSQL commit | ms |",
        "|---|---:|",
        f"| p50 | {p(0.50):.0f} |",
        f"| p90 | {p(0.90):.0f} |",
        f"| p99 | {p(0.99):.0f} |",
        f"| max | {lags[-1] if lags else float('nan'):.0f} |",
        "",
        f"{len(lags):,} events measured; backlog left after the run: {backlog_left} "
        + ("(the drain kept up)" if backlog_left == 0 else "(the drain did NOT keep up with this rate)"),
        "",
    ])
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "lag.md").write_text(text_out)
    print(text_out)
    return 0
