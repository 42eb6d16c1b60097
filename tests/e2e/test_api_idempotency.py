"""Idempotency-Key over HTTP: replays, reuse with another body, in flight."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from redis import Redis

from tests.harness import ADMIN, running_stack
from tests.rawhttp import RawClient

pytestmark = pytest.mark.anyio


async def test_1000_keys_sent_5_times_concurrently_make_exactly_1000_orders(redis_url, database_url):
    async with running_stack(redis_url, database_url, api_process=True) as stack:
        assert (await stack.put("/v1/skus/IDEM", {"name": "x"})).status_code == 200
        await stack.post("/v1/inventory/receipts", {"reference": "I1", "lines": [{"sku": "IDEM", "quantity": 100000}]})
        keys = [f"key-{i}-{uuid.uuid4().hex[:8]}" for i in range(1000)]
        body = {"channel": "dtc", "lines": [{"sku": "IDEM", "quantity": 2}]}
        final: dict[str, list[tuple[int, bytes]]] = {k: [] for k in keys}
        in_flight = 0

        async def send(client: RawClient, key: str) -> None:
            nonlocal in_flight
            while True:
                status, _, content = await client.post("/v1/orders", body, headers={"Idempotency-Key": key})
                if status == 409 and msgspec.json.decode(content)["type"] == "/problems/idempotency-in-flight":
                    in_flight += 1  # the first is still running: retry as a client would
                    await asyncio.sleep(0.01)
                    continue
                final[key].append((status, content))
                return

        async with RawClient(str(stack.client.base_url), connections=48, headers=ADMIN) as client:
            # the five copies of each key go out together, from different connections
            await asyncio.gather(*(send(client, k) for k in keys for _ in range(5)))
        # every key: five identical 201 responses
        for key, answers in final.items():
            assert len(answers) == 5
            assert {a for a in answers} == {answers[0]}, key
            assert answers[0][0] == 201
        ids = {msgspec.json.decode(a[0][1])["id"] for a in final.values()}
        assert len(ids) == 1000
        inv = (await stack.get("/v1/inventory/IDEM")).json()
        assert inv["reserved"] == 2000
        await stack.drained()
        listing = (await stack.get("/v1/orders", params={"sku": "IDEM", "limit": 1})).json()
        assert listing["total"] == 1000
        print(f"\n{in_flight} requests were told 'in flight' and retried")


async def test_a_key_reused_with_another_body_is_422_and_changes_nothing(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        assert (await stack.put("/v1/skus/RE", {"name": "x"})).status_code == 200
        await stack.post("/v1/inventory/receipts", {"reference": "I1", "lines": [{"sku": "RE", "quantity": 10}]})
        first = await stack.post("/v1/orders", {"channel": "dtc", "lines": [{"sku": "RE", "quantity": 1}]},
                                 headers={"Idempotency-Key": "abc"})
        assert first.status_code == 201
        before = (await stack.get("/v1/inventory/RE")).json()
        outbox = stack.redis.xlen(stack.keys.outbox)
        r = await stack.post("/v1/orders", {"channel": "dtc", "lines": [{"sku": "RE", "quantity": 2}]},
                             headers={"Idempotency-Key": "abc"})
        assert r.status_code == 422 and r.json()["type"] == "/problems/idempotency-key-reused"
        assert (await stack.get("/v1/inventory/RE")).json() == before
        assert stack.redis.xlen(stack.keys.outbox) <= outbox
        # the same key on another path is another operation
        r = await stack.post("/v1/inventory/receipts", {"reference": "I2", "lines": [{"sku": "RE", "quantity": 1}]},
                             headers={"Idempotency-Key": "abc"})
        assert r.status_code == 201
        # a stored refusal replays as the same refusal
        body = {"channel": "dtc", "lines": [{"sku": "RE", "quantity": 50}]}
        a = await stack.post("/v1/orders", body, headers={"Idempotency-Key": "big"})
        assert a.status_code == 409
        await stack.post("/v1/inventory/receipts", {"reference": "I3", "lines": [{"sku": "RE", "quantity": 100}]})
        b = await stack.post("/v1/orders", body, headers={"Idempotency-Key": "big"})
        assert (b.status_code, b.json()) == (a.status_code, a.json())
        # a 400 is not stored: a corrected retry with the same key runs afresh
        bad = await stack.post("/v1/orders", {"channel": "dtc", "lines": [{"sku": "RE", "quantity": 0}]},
                               headers={"Idempotency-Key": "fix-me"})
        assert bad.status_code == 400
        good = await stack.post("/v1/orders", {"channel": "dtc", "lines": [{"sku": "RE", "quantity": 1}]},
                                headers={"Idempotency-Key": "fix-me"})
        assert good.status_code == 201


async def test_the_same_key_while_the_first_is_in_flight_is_409(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        assert (await stack.put("/v1/skus/FL", {"name": "x"})).status_code == 200
        body = {"channel": "dtc", "backorder_policy": "accept", "lines": [{"sku": "FL", "quantity": 1}]}
        # Hold the claim as a slow first request would (its lookups still running)
        from api.auth import ENV_ADMIN_ID, Principal, Role
        from api.operations import fingerprint, operation_id
        from api.schemas import OrderBody

        op = operation_id(Principal(ENV_ADMIN_ID, Role.ADMIN), {"method": "POST", "path": "/v1/orders"}, "slow")
        fp = fingerprint(msgspec.convert(body, OrderBody))
        redis = Redis.from_url(stack.settings.redis_url)
        redis.set(stack.keys.in_flight(op), fp, px=5000)
        r = await stack.post("/v1/orders", body, headers={"Idempotency-Key": "slow"})
        assert r.status_code == 409 and r.json()["type"] == "/problems/idempotency-in-flight"
        assert r.headers["retry-after"]
        redis.delete(stack.keys.in_flight(op))
        r = await stack.post("/v1/orders", body, headers={"Idempotency-Key": "slow"})
        assert r.status_code == 201
        # records last at least 72 hours
        assert redis.pttl(stack.keys.idempotency(op)) > 71 * 3600 * 1000
        redis.close()
