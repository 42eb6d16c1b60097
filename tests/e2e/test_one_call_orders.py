"""POST /v1/orders in one FCALL (lib.lua's guard): what folding the rate limit,
the Idempotency-Key claim and the customer lookup into the operation could
break - rate limits shared by API processes, a replay after a claim expired,
a customer changed while its order was in flight, 429 for any body over the
limit - and the round trip count itself."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from redis.asyncio import Redis as AsyncRedis

from engine.commands import Op, PutRecord
from tests.harness import ApiProcess, running_stack

pytestmark = pytest.mark.anyio


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _stocked(stack, sku: str, qty: int) -> None:
    assert (await stack.put(f"/v1/skus/{sku}", {"name": sku})).status_code == 200
    r = await stack.post("/v1/inventory/receipts", {"reference": f"R-{sku}", "lines": [{"sku": sku, "quantity": qty}]})
    assert r.status_code == 201, r.text


async def _wholesale(stack, **profile) -> tuple[dict, str]:
    r = await stack.post("/v1/customers", {"name": "Acme", "profiles": [
        {"channel": "wholesale", "payment_terms": "net_30", "backorder_policy": "backorder",
         "ship_to": {"company": "Acme", "city": "Springfield"}, **profile}]})
    assert r.status_code == 201, r.text
    customer = r.json()
    r = await stack.post("/v1/api-keys", {"role": "wholesale", "customer_id": customer["id"]})
    assert r.status_code == 201, r.text
    return customer, r.json()["key"]


async def test_a_rate_limit_is_shared_by_two_api_processes(redis_url, database_url):
    rate = 5.0
    async with running_stack(redis_url, database_url, workers=False, api_process=True,
                             rate_limit_wholesale=rate) as stack:
        await _stocked(stack, "RL", 10_000)
        _, key = await _wholesale(stack)
        second = ApiProcess(stack.settings, Path(tempfile.mkdtemp()) / "api2.log").start()
        try:
            async with httpx.AsyncClient(base_url=second.base_url, timeout=30) as other:
                body = {"channel": "wholesale", "lines": [{"sku": "RL", "quantity": 1}]}

                async def order(client, i):
                    return await client.post("/v1/orders", json=body,
                                             headers={**_auth(key), "Idempotency-Key": f"rl-{i}"})

                start = time.monotonic()
                replies = await asyncio.gather(*(order(stack.client if i % 2 else other, i) for i in range(60)))
                elapsed = time.monotonic() - start
                codes = [r.status_code for r in replies]
                placed = codes.count(201)
                # GCRA: at most the burst plus what the rate refills meanwhile, across both processes
                assert placed <= int(rate) + elapsed * rate + 1, (placed, elapsed)
                assert placed >= 1, [(r.status_code, r.text[:200]) for r in replies[:3]]
                assert codes.count(429) >= 60 - placed - 0 and set(codes) <= {201, 429}
                for r in replies:
                    assert r.headers["ratelimit-limit"] == "5"
                    if r.status_code == 429:
                        assert r.json()["type"] == "/problems/rate-limited"
                        assert int(r.headers["retry-after"]) >= 1
                # over the limit, a bad body is 429 as well (counted before its 400), on either process
                for client in (stack.client, other):
                    bad = [await client.post("/v1/orders", json={"channel": "wholesale", "lines": []},
                                             headers=_auth(key)) for _ in range(12)]
                    assert {b.status_code for b in bad} <= {400, 429} and [b.status_code for b in bad].count(429) >= 5
                    for b in bad:  # counted either way
                        assert b.headers["ratelimit-limit"] == "5"
                        assert b.json()["type"] == ("/problems/validation" if b.status_code == 400
                                                    else "/problems/rate-limited")
                # the orders placed are those answered 201
                n = 0
                async with AsyncRedis.from_url(redis_url) as redis:
                    async for _ in redis.scan_iter(match=f"{stack.keys.prefix}:o:*", count=1000):
                        n += 1
                assert n == placed
        finally:
            second.stop()


async def test_a_replay_after_the_claim_expired_answers_the_stored_order(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False) as stack:
        await _stocked(stack, "EXP", 10)
        body = {"channel": "dtc", "lines": [{"sku": "EXP", "quantity": 2}]}
        from api.auth import ENV_ADMIN_ID, Principal, Role
        from api.operations import fingerprint, operation_id
        from api.schemas import OrderBody

        op = operation_id(Principal(ENV_ADMIN_ID, Role.ADMIN), {"method": "POST", "path": "/v1/orders"}, "crashed")
        fp = fingerprint(msgspec.convert(body, OrderBody))
        # a first request that claimed the key and died: its claim expires
        stack.redis.set(stack.keys.in_flight(op), fp, px=200)
        r = await stack.post("/v1/orders", body, headers={"Idempotency-Key": "crashed"})
        assert r.status_code == 409 and r.json()["type"] == "/problems/idempotency-in-flight"
        while stack.redis.exists(stack.keys.in_flight(op)):
            await asyncio.sleep(0.05)
        first = await stack.post("/v1/orders", body, headers={"Idempotency-Key": "crashed"})
        assert first.status_code == 201, first.text
        # the outcome is stored, no claim is left: the retry replays it
        assert not stack.redis.exists(stack.keys.in_flight(op))
        again = await stack.post("/v1/orders", body, headers={"Idempotency-Key": "crashed"})
        assert (again.status_code, again.json()) == (201, first.json())
        inv = (await stack.get("/v1/inventory/EXP")).json()
        assert inv["reserved"] == 2 and inv["available"] == 8
        # the same key with another body is still 422, with no claim around
        other = await stack.post("/v1/orders", {**body, "lines": [{"sku": "EXP", "quantity": 3}]},
                                 headers={"Idempotency-Key": "crashed"})
        assert other.status_code == 422


async def test_an_order_carries_the_customer_defaults_current_when_it_is_accepted(
        redis_url, database_url, monkeypatch):
    """The customer changes after the API built the order from its (cached)
    record and before the FCALL: the guard sees the new version, the order is
    built again, and carries the new defaults, never a mix."""
    import api.orders

    async with running_stack(redis_url, database_url, workers=False) as stack:
        await _stocked(stack, "CD", 5)
        customer, key = await _wholesale(stack)
        body = {"channel": "wholesale", "lines": [{"sku": "CD", "quantity": 8}]}
        # warm this process's record cache with version 1
        r = await stack.client.post("/v1/orders", json={**body, "lines": [{"sku": "CD", "quantity": 1}]},
                                    headers=_auth(key))
        assert r.status_code == 201 and r.json()["payment_terms"] == "net_30"

        real = api.orders.build_order
        changed = []

        async def resolve_then_change(services, req, doc):
            resolved = await real(services, req, doc)
            if not changed:
                # while this order is in flight: new terms and a new policy
                new = {**doc, "profiles": [{**doc["profiles"][0], "payment_terms": "net_60",
                                            "backorder_policy": "cancel_remainder"}]}
                await services.store.run(PutRecord(kind="customer", id=doc["id"], doc=msgspec.json.encode(new).decode()),
                                Op(op_id=f"chg-{time.time_ns()}", now_ms=int(time.time() * 1000), actor="test"))
                changed.append(True)
            return resolved

        monkeypatch.setattr(api.orders, "build_order", resolve_then_change)
        r = await stack.client.post("/v1/orders", json=body, headers={**_auth(key), "Idempotency-Key": "cd-1"})
        assert r.status_code == 201, r.text
        order = r.json()
        assert changed and order["payment_terms"] == "net_60"
        # cancel_remainder, not backorder: 4 left after the first order, the rest cancelled
        line = order["lines"][0]
        assert (line["reserved"], line["backordered"], line["cancelled"]) == (4, 0, 4), line


async def test_reads_by_id_send_the_rate_limit_step_and_the_read_together(redis_url, database_url):
    """GET /v1/inventory/{sku} and GET /v1/orders/{id} with a rate-limited key:
    the EVALSHA of the rate limit and the HGETALL, on one pipeline (one round
    trip; MONITOR shows both commands), nothing else."""
    async with running_stack(redis_url, database_url, workers=False, rate_limit_wholesale=10_000.0) as stack:
        await _stocked(stack, "RD", 10)
        _, key = await _wholesale(stack)
        r = await stack.client.post("/v1/orders", json={"channel": "wholesale", "lines": [{"sku": "RD", "quantity": 1}]},
                                    headers=_auth(key))
        order_id = r.json()["id"]
        for path in ("/v1/inventory/RD", f"/v1/orders/{order_id}"):
            seen = await _monitored(redis_url, stack.keys.prefix, lambda: stack.client.get(path, headers=_auth(key)),
                                    20, 200)
            assert seen == {"EVALSHA": 20, "HGETALL": 20}, (path, seen)
        # a wholesale key still sees only its own orders
        other = await stack.post("/v1/orders", {"channel": "dtc", "lines": [{"sku": "RD", "quantity": 1}]})
        assert (await stack.client.get(f"/v1/orders/{other.json()['id']}", headers=_auth(key))).status_code == 404


async def _monitored(redis_url, prefix, call, n, status):
    import threading
    from collections import Counter

    from redis import Redis

    await call()
    seen: Counter = Counter()
    ready, done = threading.Event(), threading.Event()

    def watch() -> None:
        with Redis.from_url(redis_url).monitor() as m:
            ready.set()
            for event in m.listen():
                if done.is_set():
                    return
                if event.get("client_type") == "lua" or "lua" in str(event.get("client_address", "")):
                    continue
                # the key cache's refresh (an HGET of the key record, once a second) aside
                if prefix in event["command"] and ":d:api_key:" not in event["command"]:
                    seen[event["command"].split()[0].strip('"').upper()] += 1

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    ready.wait(5)
    await asyncio.sleep(0.2)
    for _ in range(n):
        r = await call()
        assert r.status_code == status, r.text
    await asyncio.sleep(0.3)
    done.set()
    Redis.from_url(redis_url).ping()
    t.join(5)
    return dict(seen)


async def test_an_order_with_a_wholesale_key_is_one_redis_round_trip(redis_url, database_url):
    """Counted on the server with MONITOR (the commands a script runs are
    marked, and are not round trips): after the first order has warmed the
    key and customer caches, each order with an Idempotency-Key from a
    rate-limited wholesale key sends one FCALL and nothing else (but the key
    cache's refresh: one HGET a second, left out)."""
    async with running_stack(redis_url, database_url, workers=False, rate_limit_wholesale=10_000.0) as stack:
        await _stocked(stack, "RT", 1000)
        _, key = await _wholesale(stack)
        body = {"channel": "wholesale", "lines": [{"sku": "RT", "quantity": 1}]}
        r = await stack.client.post("/v1/orders", json=body, headers={**_auth(key), "Idempotency-Key": "rt-0"})
        assert r.status_code == 201, r.text
        sent = iter(range(1, 10**6))

        async def order():
            r = await stack.client.post("/v1/orders", json=body,
                                        headers={**_auth(key), "Idempotency-Key": f"rt-{next(sent)}"})
            assert r.headers.get("ratelimit-limit") == "10000", r.headers
            return r

        seen = await _monitored(redis_url, stack.keys.prefix, order, 20, 201)
        assert seen == {"FCALL": 20}, seen
