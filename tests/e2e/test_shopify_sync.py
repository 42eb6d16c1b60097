"""The available sync while the storefront keeps selling, wholesale orders
arrive through the API and Shopify cancels orders with restock, with
webhooks held back, reordered and duplicated:

- every write the emulator accepted is at most onhand's available at the
  push's read minus the sales Shopify had not yet delivered (its set log
  records them), so no unseen sale is ever handed back;
- once the webhooks land and the sync settles, Shopify's available equals
  onhand's for every SKU;
- far fewer GraphQL calls than changes, none over the cost budget, every
  mutation valid against the schema.
"""

from __future__ import annotations

import random
import threading
import time

from emulator import EmulatorError
from tests.e2e.test_shopify_support import emulator, shopify_stack, sync_log  # noqa: F401 - fixtures

SKUS = [f"SYNC-{i}" for i in range(4)]
UNITS = 120
RUN_S = 6.0


def _run(stop: threading.Event, period_s: float, action, errors: list) -> threading.Thread:
    def loop() -> None:
        rng = random.Random(threading.get_ident())
        while not stop.is_set():
            try:
                action(rng)
            except Exception as exc:  # noqa: BLE001 - reported by the test
                errors.append(repr(exc))
            stop.wait(period_s * rng.uniform(0.5, 1.5))

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def test_sync_never_hands_back_unseen_sales_and_converges(emulator, redis_url, database_url, broker_url):
    with shopify_stack(emulator, redis_url, database_url, broker_url=broker_url) as stack:
        shop = stack.emu.client
        shop.seed_products([{"sku": sku, "available": UNITS} for sku in SKUS])
        buyer = stack.api("POST", "/v1/customers", {"name": "Wholesale Co", "profiles": [
            {"channel": "wholesale", "backorder_policy": "backorder"}]}, expect=201)
        for sku in SKUS:
            stack.sku(sku, UNITS)
        stack.sync_settled()
        shop.webhook_mode("hold")   # deliveries go out late, shuffled, some twice

        counts = {"sales": 0, "refused": 0, "wholesale": 0, "cancels": 0, "receipts": 0}
        sold: list[int] = []
        lock = threading.Lock()

        def sell(rng) -> None:
            try:
                order = shop.purchase([{"sku": rng.choice(SKUS), "quantity": rng.randint(1, 3)}])["order"]
            except EmulatorError as exc:
                assert exc.status == 409
                counts["refused"] += 1
                return
            with lock:
                sold.append(order["id"])
                counts["sales"] += 1

        def wholesale(rng) -> None:
            stack.api("POST", "/v1/orders", {"channel": "wholesale", "customer_id": buyer["id"],
                                             "lines": [{"sku": rng.choice(SKUS),
                                                        "quantity": rng.randint(3, 10)}]}, expect=201)
            counts["wholesale"] += 1

        def cancel(rng) -> None:
            with lock:
                if not sold:
                    return
                order_id = sold.pop(rng.randrange(len(sold)))
            shop.cancel(order_id, restock=True)
            counts["cancels"] += 1

        def receive(rng) -> None:
            stack.api("POST", "/v1/inventory/receipts", {
                "reference": f"R-{time.monotonic_ns()}",
                "lines": [{"sku": rng.choice(SKUS), "quantity": 15}]}, expect=201)
            counts["receipts"] += 1

        def deliver(rng) -> None:
            shop.flush(shuffle=True, duplicates=[1, 2], concurrency=4, seed=rng.randint(0, 10**6),
                       wait=False)

        stop, errors = threading.Event(), []
        threads = [_run(stop, 0.02, sell, errors), _run(stop, 0.25, wholesale, errors),
                   _run(stop, 0.4, cancel, errors), _run(stop, 1.0, receive, errors),
                   _run(stop, 0.3, deliver, errors)]
        time.sleep(RUN_S)
        stop.set()
        for t in threads:
            t.join(10)
        assert errors == []

        # the webhooks land, the sync settles
        shop.webhook_mode("immediate")
        shop.flush(shuffle=True)
        assert shop.drain(30)["idle"]
        time.sleep(stack.settings.shopify_sale_ack_window_ms / 1000 + 0.1)
        stack.sync_settled()

        state = shop.state()
        assert all(w["status"] == "delivered" for w in state["webhooks"])
        # Shopify shows exactly onhand's available
        for sku in SKUS:
            assert state["inventory"][sku]["available"] == stack.inventory(sku)["available"], sku

        # every accepted write held back every sale Shopify had not delivered
        reads = sync_log(stack)
        writes = state["set_log"]
        assert writes, "the sync wrote nothing"
        undelivered = 0
        for w in writes:
            read = reads[(w["idempotency_key"], w["sku"])]
            assert w["quantity"] <= max(0, read["available"] - w["undelivered_sales"]), (w, read)
            assert w["change_from_quantity"] == w["available_before"]
            undelivered += w["undelivered_sales"] > 0
        assert undelivered > 0, "no write happened while sales were in flight: the test proves nothing"

        # far fewer calls than changes, none over budget, every mutation valid
        changes = sum(counts.values()) + len(state["webhook_attempts"])
        calls = state["call_log"]
        assert len(calls) * 4 < changes, (len(calls), counts)
        assert all(c["status_code"] == 200 and not c["throttled"] for c in calls)
        assert all(c["requested_cost"] <= 1000 for c in calls)
        assert state["validation_failures"] == []
        assert counts["sales"] > 50 and counts["cancels"] > 5 and counts["wholesale"] > 10
