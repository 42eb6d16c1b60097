"""The API's lean command path (onhand.redis_clients.DirectCalls) against a
real Redis: at most ``size`` connections however many callers, an error
reply leaves the connection in use, a connection the server dropped while
idle is replaced without the caller seeing it, and a command on a new
connection that fails is not sent twice."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis import exceptions as redis_errors

from onhand.redis_clients import DirectCalls, async_client

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(redis_url):
    redis = async_client(redis_url, pool_size=4)
    yield redis
    await redis.aclose()


async def _names(redis, prefix: str) -> list[str]:
    clients = await redis.client_list()
    return [c["name"] for c in clients if c.get("name", "").startswith(prefix)]


async def test_many_callers_share_at_most_size_connections_and_errors_keep_them(client):
    direct = DirectCalls(client, size=3)
    key = f"direct-{uuid.uuid4().hex}"
    try:
        replies = await asyncio.gather(*(direct.call("INCR", key) for _ in range(200)))
        assert sorted(int(r) for r in replies) == list(range(1, 201))  # each ran once
        assert len(direct._open) <= 3
        with pytest.raises(redis_errors.ResponseError):
            await direct.call("HGET", key, "f")  # WRONGTYPE: an error reply
        assert len(direct._open) <= 3 and direct._idle  # the connection is kept
        assert int(await direct.call("GET", key)) == 200
    finally:
        await client.delete(key)
        await direct.aclose()
    assert not direct._open


async def test_a_connection_dropped_while_idle_is_replaced_and_the_command_runs_once(client):
    direct = DirectCalls(client, size=2)
    key = f"direct-{uuid.uuid4().hex}"
    name = f"direct-{uuid.uuid4().hex[:8]}"
    try:
        await direct.call("CLIENT", "SETNAME", name)
        assert await _names(client, name) == [name]
        # the server drops the idle connection (as a restart or a client timeout would)
        await client.client_kill_filter(_id=next(c["id"] for c in await client.client_list() if c["name"] == name))
        assert int(await direct.call("INCR", key)) == 1
        assert int(await client.get(key)) == 1
    finally:
        await client.delete(key)
        await direct.aclose()


async def test_a_caller_beyond_the_connections_waits_and_then_gets_a_connection_error(client):
    direct = DirectCalls(client, size=1, wait_s=0.3)
    key = f"direct-{uuid.uuid4().hex}"
    try:
        blocked = asyncio.create_task(direct.call("BLPOP", key, 2))
        await asyncio.sleep(0.1)
        with pytest.raises(redis_errors.ConnectionError, match="No connection available"):
            await direct.call("PING")
        await client.rpush(key, "x")
        assert await blocked is not None
        assert await direct.call("PING") in (True, b"PONG", "PONG")
    finally:
        await client.delete(key)
        await direct.aclose()


async def test_what_it_sends_is_what_redis_py_would_send(client):
    """hiredis packs the plain arguments; anything else goes through redis-py
    (which refuses None, as it always has)."""
    from onhand.redis_clients import _pack

    conn = client.connection_pool.make_connection()
    args = ("FCALL", "fn", 2, "{m:x}:a", "{m:x}:b", b"raw\x00bytes", "ünïcode", 0, -7, 2**62, 1.5, "")
    assert b"".join(_pack(conn, args)) == b"".join(conn.pack_command(*args))
    with pytest.raises(redis_errors.DataError):
        _pack(conn, ("SET", "k", None))
    direct = DirectCalls(client, size=1)
    key = f"direct-{uuid.uuid4().hex}"
    try:
        assert await direct.call("SET", key, "ünïcode") in (True, b"OK", "OK")
        assert (await client.get(key)).decode() == "ünïcode"
    finally:
        await client.delete(key)
        await direct.aclose()


async def test_a_pipeline_sends_its_commands_in_order_with_each_reply(client):
    direct = DirectCalls(client, size=1)
    key = f"direct-{uuid.uuid4().hex}"
    try:
        replies = await direct.pipeline([("ZADD", key, 5, "a"), ("HGET", key, "f"), ("ZADD", key, "XX", "LT", 3, "a"),
                                         ("ZSCORE", key, "a")])
        assert replies[0] == 1 and isinstance(replies[1], redis_errors.ResponseError) and replies[2] == 0
        assert float(replies[3]) == 3.0
        assert len(direct._open) == 1 and direct._idle  # the connection is kept for the next caller
    finally:
        await client.delete(key)
        await direct.aclose()
