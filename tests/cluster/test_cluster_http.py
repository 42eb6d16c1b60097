"""The end-to-end battery on the local Redis Cluster (3 primaries, 3
replicas), over HTTP, with worker threads on RabbitMQ draining every
merchant's outbox into PostgreSQL: merchants spread over every primary (6
in the default suite, 20 under soak) each run the Tuesday scenario and the Idempotency-Key checks at once, and
every merchant's ids are 404 to every other merchant."""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
import pytest
from sqlalchemy import create_engine, text

from api.auth import issue_key
from engine.keys import Keys
from engine.store import Store
from onhand.redis_clients import async_client
from persistence import merchants
from persistence.rebuild import Rebuilder
from persistence.reconcile import reconcile
from tests.cluster.conftest import merchants_over_slots
from tests.e2e.test_tuesday import tuesday
from tests.harness import running_stack
from tests.servers import rabbitmq_queue_exists
from workers.brokers import QUEUES, queue_name

pytestmark = pytest.mark.anyio

#: Merchants spread over the primaries: two per primary in the default
#: suite (the 20-merchant run took 3 minutes of a slow CI machine), 20 under soak.
MERCHANTS = [6, pytest.param(20, marks=pytest.mark.soak)]
#: Idempotency-Keys per merchant, each sent this many times at once.
KEYS, COPIES = 10, 5


def _add_merchants(stack, ids: list[str]) -> None:
    """Registers each merchant (PostgreSQL row, registry) and gives it an empty pool."""
    engine = create_engine(stack.settings.database_url)
    try:
        for merchant in ids:
            with engine.begin() as conn:
                merchants.create(conn, stack.redis, merchants.MerchantRecord(merchant, f"Merchant {merchant}", {}),
                                 home=stack.settings.merchant)
            Rebuilder(stack.redis, engine, Keys(merchant)).run()
    finally:
        engine.dispose()


async def _admin_keys(url: str, ids: list[str]) -> dict[str, str]:
    client = async_client(url)
    try:
        await client.initialize()  # Store sends FCALL to the slot's node: it must know the slots
        keys = {}
        for merchant in ids:
            _, keys[merchant] = await issue_key(Store(client, merchant), "admin", None, "admin",
                                                int(time.time() * 1000))
        return keys
    finally:
        await client.aclose()


async def _idempotency(stack) -> int:
    """KEYS keys sent COPIES times at once: one order each, every copy the
    same answer; a key reused with another body is a 422 that changes
    nothing. Returns the orders made."""
    assert (await stack.put("/v1/skus/IDEM", {"name": "x"})).status_code == 200
    r = await stack.post("/v1/inventory/receipts", {"reference": "I1", "lines": [{"sku": "IDEM", "quantity": 1000}]})
    assert r.status_code == 201, r.text
    body = {"channel": "dtc", "lines": [{"sku": "IDEM", "quantity": 2}]}

    async def send(key: str) -> tuple[int, bytes]:
        while True:
            r = await stack.post("/v1/orders", body, headers={"Idempotency-Key": key})
            if r.status_code == 409 and r.json()["type"] == "/problems/idempotency-in-flight":
                await asyncio.sleep(0.01)
                continue
            return r.status_code, r.content

    keys = [f"k-{i}-{uuid.uuid4().hex[:8]}" for i in range(KEYS)]
    answers = await asyncio.gather(*(send(k) for k in keys for _ in range(COPIES)))
    by_key = {k: answers[i * COPIES:(i + 1) * COPIES] for i, k in enumerate(keys)}
    for key, got in by_key.items():
        assert len(set(got)) == 1 and got[0][0] == 201, (key, got)
    ids = {msgspec.json.decode(got[0][1])["id"] for got in by_key.values()}
    assert len(ids) == KEYS
    reused = await stack.post("/v1/orders", {**body, "lines": [{"sku": "IDEM", "quantity": 3}]},
                              headers={"Idempotency-Key": keys[0]})
    assert reused.status_code == 422 and reused.json()["type"] == "/problems/idempotency-key-reused"
    inv = (await stack.get("/v1/inventory/IDEM")).json()
    assert inv["reserved"] == 2 * KEYS
    return KEYS


async def _merchant_battery(stack) -> dict:
    world = await tuesday(stack)
    world["orders"] = await _idempotency(stack) + 151  # the Tuesday's wholesale order and 150 sales
    return world


async def _cross_reads_are_404(other, world: dict) -> None:
    oid, cid = world["order"]["id"], world["customer"]["id"]
    for path in (f"/v1/orders/{oid}", f"/v1/customers/{cid}", f"/v1/orders/{oid}/pick-list",
                 f"/v1/orders/{oid}/packing-slip.pdf"):
        r = await other.get(path)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert r.json()["type"] == "/problems/not-found"
    r = await other.post(f"/v1/orders/{oid}/cancel", {})
    assert r.status_code == 404, r.text
    listed = (await other.get("/v1/orders", params={"po_number": "PO-2PM-500"})).json()
    assert oid not in {o["id"] for o in listed["items"]}


@pytest.mark.parametrize("count", MERCHANTS)
async def test_merchants_over_http_on_the_cluster_with_workers_on_rabbitmq(cluster, database_url, rabbitmq_url,
                                                                          count):
    # Given a deployment on the cluster, its workers on RabbitMQ, and merchants on every primary
    # (a drainer holds its worker thread while its merchant's entries keep
    # coming, up to a 30 s slice: busy merchants need a thread each, or
    # some wait for a slice to end)
    async with running_stack(cluster.url, database_url, broker_url=rabbitmq_url,
                             worker_threads=count + 4) as stack:
        ids = merchants_over_slots(cluster, count)
        homes = {stack.redis.get_node_from_key(Keys(m).prefix).name for m in ids}
        assert len(homes) == 3, "the merchants must cover every primary"
        await asyncio.to_thread(_add_merchants, stack, ids)
        admin = await _admin_keys(cluster.url, ids)
        views = {m: stack.as_merchant(m, admin[m]) for m in ids}
        try:
            # When each runs the Tuesday scenario and the idempotency checks, all at once
            worlds = dict(zip(ids, await asyncio.gather(*(_merchant_battery(views[m]) for m in ids))))
            # Then every merchant's ids are 404 to the next merchant
            for i, m in enumerate(ids):
                await _cross_reads_are_404(views[ids[(i + 1) % len(ids)]], worlds[m])
            # and the workers carried every merchant's orders to PostgreSQL, once each
            for m in ids:
                await views[m].drained(timeout_s=120)
            engine = create_engine(database_url)
            try:
                with engine.connect() as conn:
                    counts = dict(conn.execute(text(
                        "SELECT merchant_id, count(*) FROM orders GROUP BY merchant_id")).all())
                assert {m: counts.get(m) for m in ids} == {m: worlds[m]["orders"] for m in ids}
                for m in ids[:3]:  # one per primary is enough to show it
                    result = await asyncio.to_thread(reconcile, stack.redis, engine, Keys(m), settle_s=0.5)
                    assert result.drifts == [], (m, result.drifts[:3])
            finally:
                engine.dispose()
            # through RabbitMQ (the Redis broker cannot run on a cluster)
            assert rabbitmq_queue_exists(rabbitmq_url, queue_name(stack.settings, "outbox"))
        finally:
            for m in ids:
                for key in list(stack.redis.scan_iter(match=Keys(m).pattern(), count=1000)):
                    stack.redis.delete(key)
    assert not any(rabbitmq_queue_exists(rabbitmq_url, queue_name(stack.settings, q)) for q in QUEUES)


def test_serve_on_the_cluster_runs_its_worker_processes_on_rabbitmq(cluster, database_url, rabbitmq_url, tmp_path):
    """`onhand serve` with a redis+cluster:// data store and ONHAND_BROKER_URL:
    its worker processes take the broker from the environment and carry an
    order accepted over HTTP to PostgreSQL."""
    import httpx

    from tests.harness import ADMIN, cleanup, stack_settings
    from tests.procs import free_port, serve, wait_ready

    settings = stack_settings(cluster.url, database_url, broker_url=rabbitmq_url, data_dir=tmp_path / "data")
    port = free_port()
    proc = serve(settings, tmp_path / "serve.log", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc=proc)
        with httpx.Client(base_url=base, headers=ADMIN, timeout=30) as http:
            assert http.put("/v1/skus/S1", json={"name": "s1"}).status_code == 200
            assert http.post("/v1/inventory/receipts", json={"reference": "R1", "lines": [
                {"sku": "S1", "quantity": 5}]}).status_code == 201
            order = http.post("/v1/orders", json={"channel": "wholesale", "lines": [{"sku": "S1", "quantity": 2}]})
            assert order.status_code == 201, order.text
            deadline = time.monotonic() + 60
            while http.get("/v1/ledger", params={"order_id": order.json()["id"]}).json()["total"] == 0:
                assert proc.alive() and time.monotonic() < deadline, proc.output()[-3000:]
                time.sleep(0.3)
        assert rabbitmq_queue_exists(rabbitmq_url, queue_name(settings, "outbox"))
    finally:
        proc.stop()
        cleanup(settings)
