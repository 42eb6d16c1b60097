"""PostgreSQL unreachable, and Redis emptied, while orders keep coming."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import msgspec
import pytest
from redis import Redis
from sqlalchemy import create_engine, func, select

from onhand.embedded import start_postgres, start_valkey
from persistence.db import migrate
from persistence.models import LedgerEntry, Order
from tests.harness import ADMIN, running_stack, stack_settings
from tests.procs import free_port, serve, wait_ready
from tests.servers import own_dir, remove_dir

pytestmark = pytest.mark.anyio


async def _order(stack, sku: str, qty: int = 1):
    return await stack.post("/v1/orders", {"channel": "dtc", "backorder_policy": "backorder",
                                           "lines": [{"sku": sku, "quantity": qty}]})


async def _postgres_outage(redis_url: str, outage_s: float, broker_url: str | None) -> None:
    path = own_dir("pg-outage")
    pg = start_postgres(path, fsync=False)
    migrate(pg.url)
    try:
        async with running_stack(redis_url, pg.url, broker_url=broker_url) as stack:
            assert (await stack.put("/v1/skus/PGDOWN", {"name": "x"})).status_code == 200
            r = await stack.post("/v1/inventory/receipts", {"reference": "R1",
                                                             "lines": [{"sku": "PGDOWN", "quantity": 100000}]})
            assert r.status_code == 201
            acked = []
            for _ in range(20):
                r = await _order(stack, "PGDOWN")
                assert r.status_code == 201
                acked.append(r.json()["id"])
            await stack.drained()
            # Given PostgreSQL goes down
            pg.stop()
            # When orders keep coming for the whole outage
            during = []
            deadline = time.monotonic() + outage_s
            while time.monotonic() < deadline:
                r = await _order(stack, "PGDOWN", 2)
                # Then they are accepted ...
                assert r.status_code == 201, r.text
                during.append(r.json()["id"])
                # ... and read back by id (the order path needs only Redis)
                back = await stack.get(f"/v1/orders/{during[-1]}")
                assert back.status_code == 200 and back.json()["lines"][0]["reserved"] == 2
                await asyncio.sleep(0.02)
            # reads that need PostgreSQL say so, with Retry-After
            listing = await stack.get("/v1/orders")
            assert listing.status_code == 503 and listing.headers["retry-after"]
            assert listing.json()["type"] == "/problems/not-ready"
            assert stack.redis.xlen(stack.keys.outbox) >= len(during)  # the backlog grew
            # And when PostgreSQL is back, the backlog drains: nothing missing or doubled
            restarted = start_postgres(path, fsync=False)
            await stack.drained(timeout_s=120)
            engine = create_engine(restarted.url)
            with engine.connect() as conn:
                ids = sorted(r[0] for r in conn.execute(select(Order.id)))
                doubled = conn.execute(
                    select(LedgerEntry.order_id).where(LedgerEntry.kind == "order.accepted")
                    .group_by(LedgerEntry.order_id).having(func.count() > 1)).all()
            engine.dispose()
            assert len(during) > 50
            assert ids == sorted(acked + during)
            assert doubled == []
            listing = await stack.get("/v1/orders", params={"limit": 1})
            assert listing.status_code == 200 and listing.json()["total"] == len(ids)
            restarted.stop()
    finally:
        pg.kill()
        remove_dir(path)


async def test_postgres_down_orders_keep_flowing(redis_url, broker_url):
    await _postgres_outage(redis_url, outage_s=10, broker_url=broker_url)


@pytest.mark.soak
async def test_postgres_down_orders_keep_flowing_long(redis_url, broker_url):
    await _postgres_outage(redis_url, outage_s=30, broker_url=broker_url)


def test_redis_emptied_under_load_serve_rebuilds_from_postgres(database_url, tmp_path):
    """Given `onhand serve` on a Redis it shares with nobody, taking orders with
    Idempotency-Keys; when that Redis loses everything (FLUSHALL, as a lost disk
    would), then no order is accepted until `serve` has rebuilt it from
    PostgreSQL; every order that had reached PostgreSQL is back; an old
    Idempotency-Key still returns its first response; and the orders
    acknowledged but not yet drained at the wipe (the loss window) are counted."""
    path = own_dir("wipe-valkey")
    valkey = start_valkey(path)
    settings = stack_settings(valkey.url, database_url, allow_unsafe_redis=False, data_dir=tmp_path / "data")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(settings, tmp_path / "serve.log", port).start()
    redis = Redis.from_url(valkey.url)
    engine = create_engine(database_url)
    try:
        wait_ready(base, proc=proc)
        results = asyncio.run(_wipe_scenario(base, redis, engine, settings.merchant))
        acked_before, reached_pg, after_wipe, replay, first, lost = results
        assert len(reached_pg) > 20 and len(acked_before) > len(reached_pg) / 2
        # every order that had reached PostgreSQL is back
        with httpx.Client(base_url=base, headers=ADMIN) as client:
            for oid in reached_pg:
                assert client.get(f"/v1/orders/{oid}").status_code == 200
        # an old Idempotency-Key replays its first response
        assert replay == first
        # nothing accepted after the wipe was lost (no order taken while not ready)
        assert after_wipe and all(oid not in lost for oid in after_wipe)
        # the loss window: acknowledged, not yet in PostgreSQL at the wipe
        assert set(lost) <= set(acked_before) - set(reached_pg)
        print(f"\nloss window at the wipe: {len(lost)} of {len(acked_before)} acknowledged orders "
              f"were not yet in PostgreSQL and were lost with Redis")
    finally:
        proc.stop()
        redis.close()
        engine.dispose()
        valkey.stop()
        remove_dir(path)


async def _wipe_scenario(base: str, redis: Redis, engine, merchant: str):
    headers = {**ADMIN}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        assert (await client.put("/v1/skus/WIPE", json={"name": "wipe"})).status_code == 200
        r = await client.post("/v1/inventory/receipts", json={"reference": "W1",
                                                               "lines": [{"sku": "WIPE", "quantity": 10**6}]})
        assert r.status_code == 201
        acked: list[tuple[float, str, str]] = []  # (request start, id, idempotency key)
        statuses: list[tuple[float, int]] = []
        stop = asyncio.Event()
        first_key = "first-" + uuid.uuid4().hex
        body = {"channel": "dtc", "backorder_policy": "backorder", "lines": [{"sku": "WIPE", "quantity": 1}]}
        first = await client.post("/v1/orders", json=body, headers={"Idempotency-Key": first_key})
        assert first.status_code == 201

        async def sender(c: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                key = f"k{c}-{n}-{uuid.uuid4().hex[:6]}"
                started = time.monotonic()
                r = await client.post("/v1/orders", json=body, headers={"Idempotency-Key": key})
                statuses.append((started, r.status_code))
                if r.status_code == 201:
                    acked.append((started, r.json()["id"], key))
                else:
                    assert r.status_code == 503, r.text
                    assert r.json()["type"] == "/problems/not-ready" and r.headers["retry-after"]
                    await asyncio.sleep(0.05)

        senders = [asyncio.create_task(sender(c)) for c in range(6)]
        await asyncio.sleep(3.0)
        with engine.connect() as conn:
            reached_pg = [r[0] for r in conn.execute(select(Order.id))]
        redis.flushall()  # Redis loses everything
        wiped_at = time.monotonic()
        # wait for serve to notice and rebuild, then keep going a little
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not redis.exists("{m:%s}:epoch" % merchant):
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.gather(*senders)
        assert any(code == 503 for t, code in statuses if t > wiped_at), "no request saw not-ready"
        replay = await client.post("/v1/orders", json=body, headers={"Idempotency-Key": first_key})
        acked_before = [oid for t, oid, _ in acked if t < wiped_at]
        after_wipe = [oid for t, oid, _ in acked if t > wiped_at]
        lost = []
        for oid in [oid for _, oid, _ in acked]:
            if (await client.get(f"/v1/orders/{oid}")).status_code == 404:
                lost.append(oid)
        return (acked_before, reached_pg, after_wipe, (replay.status_code, replay.json()),
                (first.status_code, first.json()), lost)
