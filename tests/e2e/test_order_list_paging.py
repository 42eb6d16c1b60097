"""Order lists page through Redis and PostgreSQL as one list: the orders
PostgreSQL lacks (newest, or old ones changed a moment ago) merged with its
rows, newest first, with no order missing or shown twice on any page."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import create_engine

from tests.harness import running_stack
from workers.outbox import Drainer

pytestmark = pytest.mark.anyio


async def _orders(stack, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        r = await stack.post("/v1/orders", {"channel": "wholesale", "lines": [{"sku": "PAGE-1", "quantity": 1}]})
        assert r.status_code == 201, r.text
        out.append(r.json())
    return out


async def _pages(stack, size: int, **params) -> list[str]:
    ids, offset = [], 0
    while True:
        body = (await stack.get("/v1/orders", params={"limit": size, "offset": offset, **params})).json()
        ids += [o["id"] for o in body["items"]]
        offset += size
        if offset >= body["total"]:
            return ids


async def test_pages_are_one_list_whatever_postgresql_has_yet(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False) as stack:
        assert (await stack.put("/v1/skus/PAGE-1", {"name": "Paged"})).status_code == 200
        await stack.post("/v1/inventory/receipts", {"reference": "PAGE", "lines": [{"sku": "PAGE-1", "quantity": 1000}]})
        old = await _orders(stack, 23)
        engine = create_engine(database_url)
        drainer = Drainer(stack.redis, engine, stack.keys, slot=3)
        while stack.redis.xlen(stack.keys.outbox):
            await asyncio.to_thread(drainer.run_for, 1.0)
        # newer orders PostgreSQL has not seen, and old ones changed since
        new = await _orders(stack, 9)
        for o in (old[2], old[11]):
            assert (await stack.post(f"/v1/orders/{o['id']}/cancel")).status_code == 200
        expected = [o["id"] for o in sorted(old + new, key=lambda o: -o["number"])]
        for size in (1, 4, 7, 50):
            assert await _pages(stack, size) == expected, size
        cancelled = [o["id"] for o in (old[11], old[2])]
        assert await _pages(stack, 1, status="cancelled") == cancelled
        # only new orders unsynced: they come first, PostgreSQL pages the rest
        while stack.redis.xlen(stack.keys.outbox):
            await asyncio.to_thread(drainer.run_for, 1.0)
        newest = await _orders(stack, 3)
        expected = [o["id"] for o in sorted(old + new + newest, key=lambda o: -o["number"])]
        for size in (2, 5, 35):
            assert await _pages(stack, size) == expected, size
        engine.dispose()
