"""A webhook burst: orders/create deliveries spread over a few seconds, each
delivered 2-3 times and shuffled, against fewer units than were sold:
exactly the units in stock reserved, the rest exception units, no duplicate
order, every delivery answered 200 within 5 s (Shopify's limit).

The issue's figures (1,000 orders in 10 s against 600 units, ~2,500
deliveries) run under ``-m soak``: on a 2-core machine shared with other work
the emulator itself sends only ~150 deliveries a second, so the default suite
runs the same burst at 300 orders in 5 s against 180 units.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.e2e.test_shopify_support import emulator, pg_count, shopify_stack  # noqa: F401 - fixtures


def burst(emulator, redis_url, database_url, *, orders: int, units: int, spread_s: float,
          slack: float) -> None:
    # onhand in its own process, as `serve` runs it: the emulator keeps this one
    with shopify_stack(emulator, redis_url, database_url, workers=False, app_process=True) as stack:
        shop = stack.emu.client
        # Shopify may oversell this product (CONTINUE): every purchase goes through
        shop.seed_products([{"sku": "DROP", "available": orders, "inventory_policy": "CONTINUE"}])
        stack.sku("DROP", units)
        shop.webhook_mode("hold")
        for _ in range(orders):
            shop.purchase([{"sku": "DROP", "quantity": 1}])

        outcomes = shop.flush(shuffle=True, duplicates=[2, 3], spread_s=spread_s, concurrency=16,
                              seed=7)["outcomes"]

        # every delivery (first attempts, duplicates included) answered 200 within 5 s
        copies = Counter(o["webhook_id"] for o in outcomes)
        assert len(copies) == orders and set(copies.values()) == {2, 3}
        assert all(o["status_code"] == 200 and o["ok"] for o in outcomes)
        latencies = sorted(o["latency_ms"] for o in outcomes)
        sent = sorted(a["sent_at"] for a in shop.webhooks()["attempts"])
        print(f"burst: {len(outcomes)} deliveries over {sent[-1] - sent[0]:.1f} s, latency p50 "
              f"{latencies[len(latencies) // 2]:.0f} ms, p99 {latencies[int(len(latencies) * 0.99)]:.0f} ms, "
              f"max {latencies[-1]:.0f} ms")
        assert latencies[-1] < 5000

        # exactly the units in stock reserved, the rest exception units, one order per Shopify order
        assert len(stack.shopify_orders()) == orders
        inv = stack.inventory("DROP")
        assert (inv["reserved"], inv["exception"], inv["available"]) == (units, orders - units, 0)
        assert inv["reserved_by_channel"] == {"dtc": units, "wholesale": 0}
        stack.drained(60)
        assert pg_count(stack, "orders") == orders
        # one record per key of each delivery's event: event, webhook id, Shopify order
        assert pg_count(stack, "webhook_receipts") == 3 * orders
        # and the load really was offered at about the rate asked (the emulator keeps its
        # schedule unless the machine is too busy for it)
        assert 0.9 * spread_s <= sent[-1] - sent[0] <= slack * spread_s


def test_burst_of_duplicated_shuffled_deliveries(emulator, redis_url, database_url):
    burst(emulator, redis_url, database_url, orders=300, units=180, spread_s=5.0, slack=2.0)


@pytest.mark.soak
def test_burst_of_1000_orders_in_10_s(emulator, redis_url, database_url):
    burst(emulator, redis_url, database_url, orders=1000, units=600, spread_s=10.0, slack=1.25)
