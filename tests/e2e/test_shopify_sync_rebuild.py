"""The available sync's state survives a Redis rebuilt from PostgreSQL
(docs/shopify.md, "After a rebuild"), against the emulator with the real API,
workers, Redis and PostgreSQL:

- P:sy:<sku> comes back as it was (the webhooks counted since the last write
  folded into ``owed``), and the pushes after the rebuild neither raise
  Shopify above onhand's available nor hand back a sale still in flight;
- a write whose commit was lost with Redis (its write-ahead record only in
  PostgreSQL) is replayed once, with its idempotency key, and counted once.
"""

from __future__ import annotations

import time
import uuid
from unittest import mock

from sqlalchemy import select

from persistence.models import ShopifySyncState, ShopifySyncWal
from persistence.rebuild import Rebuilder
from tests.e2e.test_shopify_support import emulator, shopify_stack, sync_log  # noqa: F401 - fixtures
from tests.harness import cleanup
from workers import shopify_sync
from workers.runtime import WorkerProcess
from workers.shopify_client import ShopifyClient
from workers.shopify_sync import ShopifySync

UNITS = 10
#: The settle windows after a first push, shortened so the test takes seconds.
SETTLE_WINDOW_MS = 300


def sync_state(stack, sku: str) -> dict[str, str]:
    raw = stack.redis.hgetall(f"{stack.keys.prefix}:sy:{sku}")
    return {k.decode(): v.decode() for k, v in raw.items()}


def folded(state: dict[str, str]) -> dict[str, str]:
    """What a rebuild restores: the same count, the webhooks counted since the
    last write (w) folded into owed."""
    return {**state, "o": str(int(state["o"]) - int(state["w"])), "w": "0"}


def unseen(state: dict[str, str], shopify_now: int) -> int:
    """What Shopify sold that onhand has not heard of, by the sync's count."""
    return int(state["o"]) + int(state["p"]) - shopify_now - int(state["w"])


def receive(stack, sku: str, units: int) -> None:
    stack.api("POST", "/v1/inventory/receipts", {
        "reference": f"R-{uuid.uuid4().hex[:8]}", "lines": [{"sku": sku, "quantity": units}]},
        expect=201)


def pushed_out(stack) -> None:
    """Nothing left to push or in flight (the sales a rebuild holds back
    keep a recheck due for SALE_HOLD_MS: not waited for)."""
    p = stack.keys.prefix

    def idle() -> bool:
        return not (stack.redis.scard(stack.keys.dirty) or stack.redis.zcard(f"{p}:sync:inflight")
                    or stack.redis.hlen(f"{p}:sync:wal"))

    stack.wait(lambda: idle() and idle(), message="the sync to push")


def rebuild(stack):
    """Redis loses everything of the merchant; it is rebuilt from PostgreSQL."""
    cleanup(stack.settings)
    return Rebuilder(stack.redis, stack.pg, stack.keys).run()


def test_the_sync_state_survives_a_rebuild_and_no_in_flight_sale_is_handed_back(
        emulator, redis_url, database_url):  # noqa: F811 - the imported fixture
    skus = [f"RB-{uuid.uuid4().hex[:6]}-{i}" for i in range(2)]
    with mock.patch.object(shopify_sync, "FIRST_PUSH_SETTLE_MS", SETTLE_WINDOW_MS), \
            shopify_stack(emulator, redis_url, database_url) as stack:
        shop = stack.emu.client
        # Given SKUs synced to Shopify, settled after their first push (a
        # quiet window, then a receipt: the rebase raises Shopify)
        shop.seed_products([{"sku": sku, "available": UNITS} for sku in skus])
        for sku in skus:
            stack.sku(sku, UNITS)
        stack.sync_settled()
        time.sleep(2 * SETTLE_WINDOW_MS / 1000)
        for sku in skus:
            receive(stack, sku, 2)
        stack.wait(lambda: not any("b" in sync_state(stack, s) for s in skus), message="the settle")
        stack.sync_settled()
        assert all(shop.inventory(sku)["available"] == UNITS + 2 for sku in skus)
        # and sales delivered since the last write (counted in w: nothing to write)
        sold = dict(zip(skus, (2, 3), strict=True))
        for sku, qty in sold.items():
            shop.purchase([{"sku": sku, "quantity": qty}])
        assert shop.drain(10)["idle"]
        stack.wait(lambda: all(stack.inventory(s)["available"] == UNITS + 2 - q for s, q in sold.items()),
                   message="the sales to be reserved")
        stack.sync_settled()
        # and sales whose webhooks are still in flight
        shop.webhook_mode("hold")
        in_flight = dict(zip(skus, (1, 2), strict=True))
        for sku, qty in in_flight.items():
            shop.purchase([{"sku": sku, "quantity": qty}])
        stack.stop_workers()
        stack.drained()
        before = {sku: sync_state(stack, sku) for sku in skus}
        assert all(int(s["w"]) > 0 and "b" not in s for s in before.values()), before

        # When Redis is lost and rebuilt from PostgreSQL
        report = rebuild(stack)

        # Then the count is what it was
        assert report.shopify_sync_states == len(skus)
        for sku in skus:
            assert sync_state(stack, sku) == folded(before[sku]), sku
            # the sales received within the hold are held back again
            assert stack.redis.zcard(f"{stack.keys.prefix}:syr:{sku}") == 1, sku

        # When stock arrives and the sync pushes again (settle windows pass)
        writes_before = len(shop.state()["set_log"])
        stack.worker = WorkerProcess(stack.settings, threads=6)
        stack.worker.start()
        for sku in skus:
            receive(stack, sku, 5)
        pushed_out(stack)
        time.sleep(3 * SETTLE_WINDOW_MS / 1000)   # a settle (there should be none) would end
        pushed_out(stack)

        # Then each write held the sales in flight back and stayed under onhand
        state = shop.state()
        after = state["set_log"][writes_before:]
        assert {w["sku"] for w in after} == set(skus), after
        reads = sync_log(stack)
        for w in after:
            read = reads[(w["idempotency_key"], w["sku"])]
            assert w["undelivered_sales"] == in_flight[w["sku"]]
            assert w["quantity"] <= read["available"] - w["undelivered_sales"], (w, read)
        for sku in skus:
            available = stack.inventory(sku)["available"]
            shown = state["inventory"][sku]["available"]
            assert available == UNITS + 2 - sold[sku] + 5
            assert shown <= available - in_flight[sku], sku
            assert unseen(sync_state(stack, sku), shown) == in_flight[sku], sku

        # When the held webhooks land, the count has nothing unseen left
        shop.webhook_mode("immediate")
        shop.flush()
        assert shop.drain(10)["idle"]
        stack.wait(lambda: all(stack.inventory(s)["available"] == UNITS + 2 - sold[s] + 5 - q
                               for s, q in in_flight.items()), message="the sales to be reserved")
        pushed_out(stack)
        state = shop.state()
        for sku in skus:
            shown = state["inventory"][sku]["available"]
            assert shown <= stack.inventory(sku)["available"], sku
            assert unseen(sync_state(stack, sku), shown) == 0, sku


def test_a_write_whose_commit_was_lost_with_redis_is_replayed_once(
        emulator, redis_url, database_url):  # noqa: F811 - the imported fixture
    sku = f"WAL-{uuid.uuid4().hex[:6]}"
    # the first push's settle lasts the whole test (the replay is then a plain write)
    with mock.patch.object(shopify_sync, "FIRST_PUSH_SETTLE_MS", 60_000), \
            shopify_stack(emulator, redis_url, database_url, workers=False) as stack:
        shop = stack.emu.client
        client = ShopifyClient.from_settings(stack.settings)

        def push() -> None:
            """The sync, as the worker runs it, until nothing is left to do."""
            sync = ShopifySync(stack.redis, stack.keys, client, stack.settings, engine=stack.pg)
            deadline = time.monotonic() + 10
            while True:
                sync.run_for(0.3)
                p = stack.keys.prefix
                if not (stack.redis.scard(stack.keys.dirty) or stack.redis.hlen(f"{p}:sync:wal")
                        or stack.redis.zcard(f"{p}:sync:inflight")):
                    return
                assert time.monotonic() < deadline, "the sync did not settle"

        def wal_rows() -> list[str]:
            with stack.pg.connect() as conn:
                return list(conn.scalars(select(ShopifySyncWal.key)))

        try:
            # Given a SKU synced to Shopify, all of it in PostgreSQL
            shop.seed_products([{"sku": sku, "available": UNITS}])
            stack.sku(sku, UNITS)
            push()
            buyer = stack.api("POST", "/v1/customers", {"name": "Wholesale Co", "profiles": [
                {"channel": "wholesale", "backorder_policy": "backorder"}]}, expect=201)
            stack.api("POST", "/v1/orders", {"channel": "wholesale", "customer_id": buyer["id"],
                                             "lines": [{"sku": sku, "quantity": 3}]}, expect=201)
            stack.drained()
            synced = sync_state(stack, sku)
            # and a write Shopify applied, whose commit's event has not reached PostgreSQL
            push()
            [write] = shop.state()["set_log"]
            key = write["idempotency_key"]
            assert (write["quantity"], shop.state()["inventory"][sku]["available"]) == (UNITS - 3,
                                                                                      UNITS - 3)
            assert wal_rows() == [key]
            committed = sync_state(stack, sku)
            assert (committed["p"], int(committed["g"])) == (str(UNITS - 3), int(synced["g"]) + 1)

            # When Redis is lost before the event is drained, and rebuilt
            report = rebuild(stack)

            # Then the write-ahead record is back, the count as before the write
            assert report.shopify_sync_wal == 1
            assert stack.redis.hkeys(f"{stack.keys.prefix}:sync:wal") == [key.encode()]
            assert sync_state(stack, sku) == folded(synced)

            # When the sync runs: the write is replayed with its key, committed once
            push()
            state = shop.state()
            assert [w["idempotency_key"] for w in state["set_log"]] == [key], "applied twice"
            assert state["inventory"][sku]["available"] == UNITS - 3
            # the same state, committed once more by the replay (pt: when that commit was)
            replayed = sync_state(stack, sku)
            assert int(replayed["pt"]) >= int(committed["pt"])
            assert {k: v for k, v in replayed.items() if k != "pt"} == {
                k: v for k, v in committed.items() if k != "pt"}
            committed = replayed
            stack.drained()
            assert wal_rows() == []
            with stack.pg.connect() as conn:
                t = ShopifySyncState
                row = conn.execute(select(t.pushed, t.balance, t.gen).where(t.sku == sku)).one()
            assert (row.pushed, row.balance, row.gen) == (
                UNITS - 3, int(committed["o"]) + UNITS - 3, int(committed["g"]))

            # and a later rebuild has nothing left to replay
            assert rebuild(stack).shopify_sync_wal == 0
            assert sync_state(stack, sku) == committed
        finally:
            client.close()
