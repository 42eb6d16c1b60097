"""The hot path's shared connection (onhand.redis_mux.RedisMux) against a
real Redis: many callers on one connection each get their own reply, error
replies and callers that went away do not shift the others', a connection
the server dropped is replaced, commands waiting on a lost or silent
connection fail (and are not sent twice), and what it sends is what
redis-py would send."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager

import pytest
from redis import exceptions as redis_errors

from onhand.redis_clients import async_client
from onhand.redis_mux import RedisMux, _pack

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(redis_url):
    redis = async_client(redis_url, pool_size=4)
    yield redis
    await redis.aclose()


async def _until(check, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _kill(client, name: str) -> None:
    ids = [c["id"] for c in await client.client_list() if c.get("name") == name]
    assert len(ids) == 1, ids
    await client.client_kill_filter(_id=ids[0])


async def test_many_callers_on_one_connection_each_get_their_own_reply(client):
    mux = RedisMux(client)
    key = f"mux-{uuid.uuid4().hex}"
    await client.set(key, "a string")
    try:
        async def one(i: int):
            if i % 7 == 0:  # an error reply (WRONGTYPE) among the others
                with pytest.raises(redis_errors.ResponseError, match="WRONGTYPE"):
                    await mux.call("HGET", key, "f")
                return None
            return await mux.call("ECHO", f"caller-{i}")

        replies = await asyncio.gather(*(one(i) for i in range(1000)))
        assert all(r is None if i % 7 == 0 else r == f"caller-{i}".encode() for i, r in enumerate(replies))
        counts = await asyncio.gather(*(mux.call("INCR", key + ":n") for _ in range(300)))
        assert sorted(counts) == list(range(1, 301))  # each ran once
        assert mux.opened == 1
    finally:
        await client.delete(key, key + ":n")
        await mux.aclose()


async def test_callers_that_went_away_do_not_shift_the_replies_of_the_others(client):
    mux = RedisMux(client)
    try:
        await mux.call("PING")
        tasks = [asyncio.ensure_future(mux.call("ECHO", f"caller-{i}")) for i in range(300)]
        await asyncio.sleep(0)  # every command is written, no reply read yet
        for t in tasks[::3]:
            t.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        for i, r in enumerate(done):
            if i % 3 == 0:
                assert isinstance(r, asyncio.CancelledError)
            else:
                assert r == f"caller-{i}".encode()
        assert await mux.call("ECHO", "after") == b"after"
        assert mux.opened == 1
    finally:
        await mux.aclose()


@asynccontextmanager
async def _named(client):
    """A RedisMux whose connection has a name of its own (to kill it by), and a key."""
    mux = RedisMux(client)
    key = f"mux-{uuid.uuid4().hex}"
    name = f"mux-{uuid.uuid4().hex[:8]}"
    try:
        await mux.call("CLIENT", "SETNAME", name)
        yield mux, key, name
    finally:
        await client.delete(key, key + ":n")
        await mux.aclose()


async def test_a_connection_the_server_dropped_while_idle_is_replaced(client):
    async with _named(client) as (mux, key, name):
        await _kill(client, name)  # as a restart or a client timeout would
        await _until(mux.lost)  # noticed while idle, not at the next call
        assert int(await mux.call("INCR", key)) == 1
        assert int(await client.get(key)) == 1  # ran once
        assert mux.opened == 2


async def test_commands_waiting_on_a_lost_connection_fail_and_the_next_call_reconnects(client):
    async with _named(client) as (mux, key, name):
        # a blocking command holds the connection (the API never sends one):
        # the INCR behind it waits for its reply
        blocked = asyncio.ensure_future(mux.call("BLPOP", key, 5))
        behind = asyncio.ensure_future(mux.call("INCR", key + ":n"))
        await asyncio.sleep(0.1)
        await _kill(client, name)
        for task in (blocked, behind):
            with pytest.raises(redis_errors.ConnectionError):
                await task
        assert await client.get(key + ":n") is None  # never sent again
        assert await mux.call("ECHO", "again") == b"again"


async def test_a_connection_silent_past_the_reply_timeout_is_closed_and_its_commands_fail(client):
    mux = RedisMux(client, reply_timeout_s=0.3)
    key = f"mux-{uuid.uuid4().hex}"
    try:
        start = time.monotonic()
        blocked = asyncio.ensure_future(mux.call("BLPOP", key, 3))
        behind = asyncio.ensure_future(mux.call("PING"))
        for task in (blocked, behind):
            with pytest.raises(redis_errors.TimeoutError):
                await task
        assert time.monotonic() - start < 2.5  # well before BLPOP's own 3 s
        assert mux.lost()
        assert await mux.call("ECHO", "again") == b"again"
        assert mux.opened == 2
    finally:
        await client.delete(key)
        await mux.aclose()


async def test_an_unreachable_server_is_a_connection_error():
    redis = async_client("redis://127.0.0.1:1/0")
    mux = RedisMux(redis)
    try:
        with pytest.raises(redis_errors.ConnectionError):
            await mux.call("PING")
    finally:
        await mux.aclose()
        await redis.aclose()


async def test_what_it_sends_is_what_redis_py_would_send(client):
    """hiredis packs the plain arguments; anything else goes through redis-py
    (which refuses None, as it always has)."""
    conn = client.connection_pool.make_connection()
    args = ("FCALL", "fn", 2, "{m:x}:a", "{m:x}:b", b"raw\x00bytes", "ünïcode", 0, -7, 2**62, 1.5, "")
    assert _pack(conn, args) == b"".join(conn.pack_command(*args))
    with pytest.raises(redis_errors.DataError):
        _pack(conn, ("SET", "k", None))
    mux = RedisMux(client)
    key = f"mux-{uuid.uuid4().hex}"
    try:
        assert await mux.call("SET", key, "ünïcode") == b"OK"
        assert (await client.get(key)).decode() == "ünïcode"
    finally:
        await client.delete(key)
        await mux.aclose()


async def test_a_pipeline_sends_its_commands_in_order_with_each_reply(client):
    mux = RedisMux(client)
    key = f"mux-{uuid.uuid4().hex}"
    try:
        replies, echo = await asyncio.gather(
            mux.pipeline([("ZADD", key, 5, "a"), ("HGET", key, "f"), ("ZADD", key, "XX", "LT", 3, "a"),
                          ("ZSCORE", key, "a")]),
            mux.call("ECHO", "between"))
        assert replies[0] == 1 and isinstance(replies[1], redis_errors.ResponseError) and replies[2] == 0
        assert float(replies[3]) == 3.0
        assert echo == b"between"
        assert await mux.pipeline([("ECHO", "one")]) == [b"one"]  # a list, even of one
        assert mux.opened == 1
    finally:
        await client.delete(key)
        await mux.aclose()


async def test_after_close_calls_fail(client):
    mux = RedisMux(client)
    await mux.call("PING")
    await mux.aclose()
    with pytest.raises(redis_errors.ConnectionError):
        await mux.call("PING")
