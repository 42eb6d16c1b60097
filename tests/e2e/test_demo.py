"""`onhand demo` plays the Tuesday scenario against a running onhand."""

from __future__ import annotations

import asyncio

import pytest

from onhand.demo import run_demo
from tests.harness import ADMIN_KEY, running_stack

pytestmark = pytest.mark.anyio


async def test_demo_loads_a_merchant_and_plays_tuesday(redis_url, database_url, capsys):
    async with running_stack(redis_url, database_url) as stack:
        code = await asyncio.to_thread(run_demo, stack.settings, url=str(stack.client.base_url).rstrip("/"),
                                       key=ADMIN_KEY)
        assert code == 0
        out = capsys.readouterr().out
        assert "100 reserved, 50 exception units" in out and "shipped, 2 shipments" in out
        inv = (await stack.get("/v1/inventory/TEE-BEST")).json()
        assert (inv["on_hand"], inv["reserved"], inv["exception"]) == (100, 100, 50)
        customers = (await stack.get("/v1/customers/" + (await stack.get("/v1/orders", params={
            "channel": "wholesale"})).json()["items"][0]["customer_id"])).json()
        assert {(p["channel"], p["payment_terms"]) for p in customers["profiles"]} == {
            ("wholesale", "net_30"), ("dtc", "prepaid")}
