"""The Shopify client against the emulator over real HTTP: Shopify's edge 429
with Retry-After, the cost bucket's THROTTLED answer, and a revoked token."""

from __future__ import annotations

import pytest

from tests.e2e.test_shopify_support import emulator  # noqa: F401 - fixture
from workers.shopify_client import ShopifyClient, ShopifyUnauthorized

QUERY = "query Loc { location { id } }"


@pytest.fixture
def shop(emulator):
    emulator.client.reset()
    emulator.client.bucket(maximum_available=1000, restore_rate=50, currently_available=1000,
                           single_query_max=1000)
    client = ShopifyClient(api_url=emulator.base_url, access_token=emulator.access_token,
                           api_version="2026-04")
    yield emulator, client
    client.close()
    emulator.client.reset()


def test_429_with_retry_after_is_waited_out(shop):
    emu, client = shop
    emu.client.throttle_next(2, retry_after_s=0.3)
    assert client.execute(QUERY, cost=1)["location"]["id"].startswith("gid://shopify/Location/")
    calls = emu.client.state()["call_log"]
    assert [c["status_code"] for c in calls] == [429, 429, 200]
    assert calls[2]["time"] - calls[0]["time"] >= 0.55     # it waited Retry-After twice
    assert client.stats.rate_limited == 2


def test_the_cost_bucket_is_respected_after_one_throttled_answer(shop):
    emu, client = shop
    # an empty bucket the client does not know about yet, restoring slowly
    # enough (2 points/s) that the first query surely finds it empty however
    # busy the machine is (at 100/s it had restored a point within 10 ms)
    emu.client.bucket(maximum_available=100, restore_rate=2, currently_available=0)
    for _ in range(4):
        client.execute(QUERY, cost=1)
    calls = emu.client.state()["call_log"]
    assert [c["throttled"] for c in calls] == [True, False, False, False, False]
    assert client.stats.throttled == 1


def test_a_revoked_token_raises_unauthorized(shop):
    emu, client = shop
    emu.client.uninstall()
    with pytest.raises(ShopifyUnauthorized):
        client.execute(QUERY, cost=1)
