"""The load tests' invariant checks can fail: each kind of breach they exist
to catch, made on purpose against real Redis and PostgreSQL, is reported,
and a healthy run reports none."""

from __future__ import annotations

import uuid

import pytest

from loadtests.invariants import check_onhand
from tests.harness import ADMIN_KEY, running_stack

pytestmark = pytest.mark.anyio


async def test_each_kind_of_breach_is_reported_and_a_healthy_run_passes(redis_url, database_url):
    async with running_stack(redis_url, database_url) as stack:
        # Given one SKU with 10 units and four accepted orders, all drained
        sku = f"INV-{uuid.uuid4().hex[:8]}"
        assert (await stack.put(f"/v1/skus/{sku}", {"name": sku})).status_code == 200
        r = await stack.post("/v1/inventory/receipts", {"reference": sku, "lines": [{"sku": sku, "quantity": 10}]})
        assert r.status_code == 201
        accepted: dict[str, dict] = {}
        for _ in range(4):
            r = await stack.post("/v1/orders", {"channel": "dtc", "lines": [{"sku": sku, "quantity": 2}]})
            assert r.status_code == 201
            body = r.json()
            accepted[body["id"]] = {"kind": "dtc", "lines": [
                [l["sku"], l["quantity"], l["reserved"], l["backordered"], l["exception"]] for l in body["lines"]]}
        await stack.drained()

        def check(answered: dict[str, dict], duplicates: tuple[str, ...] = ()) -> list[str]:
            return check_onhand("breaches", stack.redis, stack.keys, stack.settings.database_url,
                                str(stack.client.base_url), ADMIN_KEY, {sku: 10}, answered,
                                list(duplicates)).breaches

        def reported(breaches: list[str], what: str) -> bool:
            return any(b.startswith(what) for b in breaches)

        # Then the healthy state passes every check
        assert check(accepted) == []

        # A 2xx order that PostgreSQL does not hold
        ghost = {**accepted, "ord_never_stored": {"kind": "dtc", "lines": [[sku, 1, 1, 0, 0]]}}
        assert reported(check(ghost), "PostgreSQL: every 2xx order present")
        # An order id answered twice
        first = next(iter(accepted))
        assert reported(check(accepted, (first,)), "PostgreSQL: no order id answered twice")
        # A stored order that was never answered 2xx
        fewer = {k: v for k, v in accepted.items() if k != first}
        assert reported(check(fewer), "PostgreSQL: no order that was not answered 2xx")
        # Stored lines that differ from what the 201 said
        changed = {**accepted, first: {"kind": "dtc", "lines": [[sku, 2, 1, 1, 0]]}}
        assert reported(check(changed), "PostgreSQL: stored lines = the lines the 201 answered")

        # An oversell in Redis: reserved pushed above on hand
        stack.redis.hincrby(stack.keys.sku(sku), "rd", 5)
        broken = check(accepted)
        assert reported(broken, "Redis: zero oversell")
        assert reported(broken, "Redis: reserved/backordered/exception = sums over open order lines")
        assert reported(broken, "Redis and PostgreSQL hold the same counters")
        # while PostgreSQL's own counters still pass
        assert not reported(broken, "PostgreSQL: zero oversell")
        stack.redis.hincrby(stack.keys.sku(sku), "rd", -5)
        assert check(accepted) == []

        # Units that appeared from nowhere: on hand above what was received
        stack.redis.hincrby(stack.keys.sku(sku), "oh", 1)
        assert reported(check(accepted), "Redis: on hand = received - shipped")
