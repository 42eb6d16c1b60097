"""A local Valkey Cluster the tests start themselves: 3 primaries, 3
replicas, AOF appendfsync always (onhand/embedded_cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from onhand.embedded_cluster import LocalCluster, start_cluster
from tests.servers import own_dir, remove_dir


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    path = own_dir("cluster")
    found = start_cluster(path)
    try:
        yield found
    finally:
        found.stop()
        remove_dir(path)


def merchants_over_slots(cluster: LocalCluster, count: int) -> list[str]:
    """``count`` merchant ids whose slots cover every primary."""
    from redis.crc import key_slot

    from engine.keys import Keys
    from tests.servers import new_merchant

    ranges = []
    with cluster.nodes[0].client() as c:
        for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
            ranges.append((int(start), int(end), int(primary[1])))

    def node(merchant: str) -> int:
        slot = key_slot(Keys(merchant).prefix.encode())
        return next(port for lo, hi, port in ranges if lo <= slot <= hi)

    chosen: list[str] = []
    by_node: dict[int, int] = {}
    while len(chosen) < count or len(by_node) < len(ranges):
        m = new_merchant()
        n = node(m)
        if len(chosen) >= count and n in by_node:
            continue
        chosen.append(m)
        by_node[n] = by_node.get(n, 0) + 1
    return chosen


async def hot_stores(client, merchants: list[str], **store_options) -> dict:
    """A started store per merchant on ``client``, each with SKU HOT holding
    a million units (the epoch set, as serve would)."""
    import time

    from engine.commands import Op, PutSku, ReceiveStock, SkuQty
    from engine.store import Store

    stores = {}
    for m in merchants:
        store = Store(client, m, **store_options)
        await store.start()
        await client.set(store.keys.epoch, "test")
        now = int(time.time() * 1000)
        await store.run(PutSku(sku="HOT"), Op(op_id=f"sku-{m}", now_ms=now, actor="test"))
        await store.run(ReceiveStock(receipt_id="r1", lines=(SkuQty(sku="HOT", qty=1_000_000),)),
                        Op(op_id=f"rcv-{m}", now_ms=now, actor="test"))
        stores[m] = store
    return stores
