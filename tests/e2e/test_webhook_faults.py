"""Webhook delivery under faults: the receiver down, answering 500,
answering slowly, and the worker process killed with SIGKILL mid-delivery.
Every event arrives, none is lost, an order's events arrive in order, and
duplicates only ever repeat a webhook-id with the same content. A healthy
endpoint meanwhile gets everything while the faulty one is still failing.

(How fast orders are taken meanwhile is a figure of `onhand bench webhooks`,
not an assertion here.)"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.harness import running_stack
from tests.notify_helpers import FAST_RETRIES, eventually, subscribe
from tests.procs import Proc, env_for
from tests.receiver import Receiver, check_complete_and_ordered

pytestmark = pytest.mark.anyio


async def _orders(stack, n: int, tag: str) -> list[str]:
    """n wholesale orders of 3 units with 2 in stock each time: each is
    created with a backorder; a receipt then fills them; then each ships."""
    ids = []
    for i in range(n):
        r = await stack.post("/v1/inventory/receipts", {"reference": f"{tag}-in-{i}",
                                                        "lines": [{"sku": "MUG", "quantity": 2}]})
        assert r.status_code == 201, r.text
        r = await stack.post("/v1/orders", {"channel": "wholesale", "po_number": f"{tag}-{i}",
                                            "lines": [{"sku": "MUG", "quantity": 3}]})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = await stack.post("/v1/inventory/receipts", {"reference": f"{tag}-fill",
                                                    "lines": [{"sku": "MUG", "quantity": n}]})
    assert r.status_code == 201, r.text
    for oid in ids:
        r = await stack.post(f"/v1/orders/{oid}/shipments", {"lines": [{"sku": "MUG", "quantity": 3}],
                                                            "method": "parcel", "tracking_number": f"T-{oid}"})
        assert r.status_code == 201, r.text
    return ids


def _positions(database_url: str) -> dict[str, tuple]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("select id, order_id, entry_ms, entry_seq, rank from notification_events"))
        out = {r.id: (r.order_id, (r.entry_ms, r.entry_seq, r.rank)) for r in rows}
    engine.dispose()
    return out


async def _outage_then_errors_then_slowness(redis_url, database_url, outage_s: float) -> None:
    async with running_stack(redis_url, database_url, **FAST_RETRIES) as stack:
        assert (await stack.put("/v1/skus/MUG", {"name": "Mug"})).status_code == 200
        healthy, faulty = Receiver().start(), Receiver().start()
        healthy.secret = (await subscribe(stack, healthy.url))["secret"]
        faulty.secret = (await subscribe(stack, faulty.url))["secret"]

        # Given the faulty receiver down (nothing listening) for the outage
        faulty.stop()
        await _orders(stack, 5, "down")
        await asyncio.sleep(outage_s)
        faulty.start()
        # When it answers 500 for a while
        faulty.mode = "fail"
        await _orders(stack, 5, "fail")
        await eventually(lambda: sum(faulty.hits.values()) >= 10, what="500s answered")
        faulty.mode = "ok"
        # and then answers only after 10 s (the delivery timeout is 2 s)
        await stack.drained()
        await eventually(lambda: len(faulty.unique()) == len(_positions(database_url)), what="catch-up")
        faulty.mode, faulty.slow_s = "slow", 10.0
        before = set(_positions(database_url))
        await _orders(stack, 4, "slow")
        await stack.drained()
        fresh = set(_positions(database_url)) - before
        # Then the healthy endpoint gets every event while the slow one times out
        await eventually(lambda: fresh <= set(healthy.unique()), what="healthy endpoint served")
        engine = create_engine(database_url)
        with engine.connect() as conn:
            delivered_slow = conn.execute(text(
                "select count(*) from webhook_deliveries d join webhook_endpoints e on e.id = d.endpoint_id "
                "where e.url = :url and d.status = 'delivered' and d.event_id = any(:ids)"),
                {"url": faulty.url, "ids": sorted(fresh)}).scalar()
        engine.dispose()
        assert delivered_slow == 0, "no delivery can succeed against a 10 s answer with a 2 s timeout"
        faulty.mode = "ok"
        # and once it answers again, every event arrives, in order per order
        positions = _positions(database_url)
        await eventually(lambda: set(faulty.unique()) == set(positions), timeout_s=90, what="every event")
        check_complete_and_ordered(faulty, positions)
        check_complete_and_ordered(healthy, positions)
        # the faults were real: refused connections, 500s and timeouts were retried
        assert sum(faulty.hits.values()) >= len(positions) + 10
        engine = create_engine(database_url)
        with engine.connect() as conn:
            retried = conn.execute(text(
                "select max(attempts) from webhook_deliveries d join webhook_endpoints e "
                "on e.id = d.endpoint_id where e.url = :url"), {"url": faulty.url}).scalar()
        engine.dispose()
        assert retried > 1
        healthy.stop()
        faulty.stop()


async def test_receiver_down_failing_and_slow(redis_url, database_url):
    await _outage_then_errors_then_slowness(redis_url, database_url, outage_s=10)


@pytest.mark.soak
async def test_receiver_down_for_a_minute(redis_url, database_url):
    await _outage_then_errors_then_slowness(redis_url, database_url, outage_s=60)


async def test_worker_killed_mid_delivery(redis_url, database_url):
    # Given a worker process delivering to a receiver that takes 3 s to answer
    async with running_stack(redis_url, database_url, workers=False, **FAST_RETRIES) as stack:
        log = Path(tempfile.mkdtemp()) / "worker.log"
        env = env_for(stack.settings, ONHAND_WEBHOOKS_ALLOW_PRIVATE="1", ONHAND_WEBHOOK_TIMEOUT_MS="5000",
                      ONHAND_WEBHOOK_RETRY_BASE_MS="200", ONHAND_WEBHOOK_RETRY_CAP_MS="1000")
        import sys

        worker = Proc([sys.executable, "-m", "onhand", "worker", "--threads", "6"], env, log).start()
        try:
            assert (await stack.put("/v1/skus/MUG", {"name": "Mug"})).status_code == 200
            receiver = Receiver(mode="slow", slow_s=3.0).start()
            receiver.secret = (await subscribe(stack, receiver.url))["secret"]
            await _orders(stack, 3, "kill")
            # When the worker is killed with SIGKILL while deliveries are under way
            await eventually(lambda: receiver.holding > 0, what="a delivery under way")
            worker.kill9()
            # (the receiver still finishes the requests it held: the answers go nowhere)
            await eventually(lambda: receiver.holding == 0, what="held requests done")
            receiver.mode = "ok"
            worker = Proc(worker.args, env, log).start()
            # Then every event arrives once the claims of the dead worker run out
            # created, filled, shipped and invoiced, for each of the 3 orders
            await eventually(lambda: len(_positions(database_url)) == 12, what="events applied")
            positions = _positions(database_url)
            await eventually(lambda: set(receiver.unique()) == set(positions), timeout_s=90,
                             what=f"every event; worker log:\n{worker.output()[-2000:]}")
            check_complete_and_ordered(receiver, positions)
            # and what was in flight at the kill came again with the same webhook-id
            assert len(receiver.received) > len(positions), "nothing was delivered twice: no kill mid-delivery"
        finally:
            worker.stop()
