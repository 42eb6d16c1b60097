"""API keys served from each process's 1 s cache: a revoked key stops working
on every API process within 1 s (pub/sub invalidation, the TTL as the bound
when a message is lost)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis as AsyncRedis

from api.auth import KEY_CACHE_TTL_S, Authenticator, new_key
from tests.harness import ApiProcess, running_stack

pytestmark = pytest.mark.anyio


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _first_401(clients: list[httpx.AsyncClient], key: str, since: float, limit_s: float) -> list[float]:
    """Seconds from ``since`` until each client's process answers 401 to the key."""
    seen: list[float | None] = [None] * len(clients)
    while None in seen and time.monotonic() - since < limit_s + 2:
        for i, client in enumerate(clients):
            if seen[i] is None:
                r = await client.get("/v1/inventory/NOPE", headers=_auth(key))
                assert r.status_code in (401, 404), r.text
                if r.status_code == 401:
                    seen[i] = time.monotonic() - since
    assert None not in seen, f"a process still accepted the key {limit_s + 2:.1f} s on: {seen}"
    return seen  # type: ignore[return-value]


async def test_a_revoked_key_stops_working_on_two_api_processes_within_1s(redis_url, database_url):
    async with running_stack(redis_url, database_url, workers=False, api_process=True) as stack:
        second = ApiProcess(stack.settings, Path(tempfile.mkdtemp()) / "api2.log").start()
        try:
            async with httpx.AsyncClient(base_url=second.base_url, timeout=30) as other:
                for round_ in range(2):
                    r = await stack.post("/v1/api-keys", {"role": "operator", "name": f"k{round_}"})
                    assert r.status_code == 201, r.text
                    key, key_id = r.json()["key"], r.json()["id"]
                    # both processes have the key cached (404: authenticated, no such SKU)
                    for _ in range(20):
                        for client in (stack.client, other):
                            assert (await client.get("/v1/inventory/NOPE", headers=_auth(key))).status_code == 404
                    if round_ == 0:
                        # through the API: doc_put.lua publishes the change
                        start = time.monotonic()
                        assert (await stack.client.delete(f"/v1/api-keys/{key_id}",
                                                          headers=stack_admin())).status_code == 204
                        delays = await _first_401([stack.client, other], key, start, 1.0)
                        print(f"\nrevoked: 401 after {delays[0] * 1000:.1f} / {delays[1] * 1000:.1f} ms")
                        assert max(delays) < 1.0
                    else:
                        # the record removed behind the API's back (no message): the TTL alone
                        start = time.monotonic()
                        await _raw_delete(stack, key_id)
                        delays = await _first_401([stack.client, other], key, start, KEY_CACHE_TTL_S)
                        print(f"removed without a message: 401 after {delays[0] * 1000:.0f} / "
                              f"{delays[1] * 1000:.0f} ms")
                        # the TTL, plus the time of one request on this busy machine
                        assert max(delays) < KEY_CACHE_TTL_S + 0.5
        finally:
            second.stop()


def stack_admin() -> dict[str, str]:
    from tests.harness import ADMIN_KEY

    return {"Authorization": f"Bearer {ADMIN_KEY}"}


async def _raw_delete(stack, key_id: str) -> None:
    stack.redis.delete(f"{stack.keys.prefix}:d:api_key:{key_id}")


async def test_the_cache_serves_a_key_for_its_ttl_and_a_message_drops_it(redis_url):
    """With a clock of our own: the record is read once per TTL; forget() (what
    a pub/sub message does) makes the next request read Redis again."""
    redis = AsyncRedis.from_url(redis_url)
    now = [1000.0]
    auth = Authenticator(redis, "default", None, clock=lambda: now[0])
    key_id, key, digest = new_key("default")
    record_key = f"{{m:default}}:d:api_key:{key_id}"
    import msgspec

    from api.auth import KeyRecord

    doc = msgspec.json.encode(KeyRecord(id=key_id, role="operator", hash=digest, created_at_ms=1))
    await redis.hset(record_key, mapping={"doc": doc, "v": 1})
    try:
        header = f"Bearer {key}"
        assert (await auth.authenticate(header)).key_id == key_id
        await redis.delete(record_key)
        now[0] += KEY_CACHE_TTL_S / 2
        assert (await auth.authenticate(header)).key_id == key_id  # cached
        now[0] += KEY_CACHE_TTL_S / 2 + 0.001
        with pytest.raises(Exception) as exc:
            await auth.authenticate(header)  # expired: read again, gone
        assert exc.value.status_code == 401
        # a wrong secret is refused from the cache as well
        await redis.hset(record_key, mapping={"doc": doc, "v": 1})
        assert (await auth.authenticate(header)).key_id == key_id
        with pytest.raises(Exception) as exc:
            await auth.authenticate(header[:-1] + ("A" if header[-1] != "A" else "B"))
        assert exc.value.status_code == 401
        await redis.delete(record_key)
        auth.forget(key_id)
        with pytest.raises(Exception) as exc:
            await auth.authenticate(header)
        assert exc.value.status_code == 401
    finally:
        await redis.delete(record_key)
        await redis.aclose()
