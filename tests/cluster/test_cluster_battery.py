"""The correctness battery on a Redis Cluster (3 primaries, 3 replicas),
with merchants spread over every primary: each merchant's operation is one
script in its own slot, wherever that slot lives."""

from __future__ import annotations

import asyncio

import pytest

from engine.keys import Keys
from engine.store import Store
from onhand.redis_clients import async_client
from tests.cluster.conftest import merchants_over_slots
from tests.integration.test_concurrency import scenario
from tests.integration.test_shopify_intake import (
    test_cancel_before_its_order_is_kept_and_applied_when_it_comes as cancel_before_order,
)
from tests.integration.test_shopify_intake import (
    test_repeats_by_event_webhook_or_order_change_nothing as repeats_change_nothing,
)

pytestmark = pytest.mark.anyio


def _nodes(client, merchants: list[str]) -> set[str]:
    return {client.get_node_from_key(Keys(m).prefix).name for m in merchants}


async def test_20_merchants_racing_on_every_primary_never_oversell(cluster):
    """The 64-client race (tests/integration/test_concurrency.py), for 20
    merchants at once, 160 clients in all, every refusal justified and every
    unit conserved per merchant."""
    client = async_client(cluster.url, pool_size=200)
    try:
        merchants = merchants_over_slots(cluster, 20)
        await client.initialize()
        assert len(_nodes(client, merchants)) == 3
        await asyncio.gather(*(scenario(Store(client, m), orders=1000, clients=8) for m in merchants))
    finally:
        await client.aclose()


async def _store(client, merchant: str) -> Store:
    store = Store(client, merchant)
    await store.start()
    await client.set(store.keys.epoch, "test")
    return store


async def test_shopify_duplicates_change_nothing_on_every_primary(cluster):
    client = async_client(cluster.url)
    try:
        await client.initialize()
        merchants = merchants_over_slots(cluster, 3)
        assert len(_nodes(client, merchants)) == 3
        for merchant in merchants:
            store = await _store(client, merchant)
            await repeats_change_nothing(store)
            await cancel_before_order(await _store(client, merchant + "-b"))
    finally:
        await client.aclose()
