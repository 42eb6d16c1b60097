"""Redis clients for a standalone Redis or a Redis / Valkey Cluster.

``ONHAND_REDIS_URL`` names a cluster with the scheme ``redis+cluster://``
(or ``rediss+cluster://`` for TLS) and one or more seed nodes:
``redis+cluster://10.0.0.1:7000,10.0.0.2:7000/0``. The client learns the
rest of the cluster from them. Every key of a merchant shares its hash tag,
so each operation stays in one slot on whichever node holds it.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from redis import Redis
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
#: redis-py's cluster clients, on every 5th MOVED by default, drop every
#: connection to every node (in-flight requests of all merchants fail with
#: "Connection closed by server"); 0 has a MOVED only patch the slot map with
#: the new owner it names. A node that is gone still makes them read the map again.
REINITIALIZE_STEPS = 0
#: Longest a request waits for a free connection (standalone) before it is a 503, seconds.
POOL_WAIT_S = 5.0
#: argument types hiredis packs exactly as redis-py's encoder would
_PLAIN = frozenset((str, bytes, int, float))
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis without its hiredis extra: redis-py packs
    _hiredis_pack = None


def is_cluster(url: str | None) -> bool:
    return bool(url) and urlsplit(url).scheme in CLUSTER_SCHEMES


def _seeds(url: str) -> tuple[list[tuple[str, int]], dict]:
    parts = urlsplit(url)
    hosts = parts.netloc.rsplit("@", 1)[-1]
    auth = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    seeds = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        seeds.append((host.strip("[]") or "127.0.0.1", int(port or 6379)))
    options: dict = {}
    if auth:
        user, _, password = auth.partition(":")
        options.update(username=user or None, password=password or None)
    if parts.scheme.startswith("rediss"):
        options["ssl"] = True
    return seeds, options


def sync_client(url: str, **options) -> Redis | RedisCluster:
    if is_cluster(url):
        seeds, extra = _seeds(url)
        options.setdefault("reinitialize_steps", REINITIALIZE_STEPS)
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in seeds], **extra, **options)
    return Redis.from_url(url, **options)


def async_client(url: str, *, pool_size: int = 64, **options) -> AsyncRedis | AsyncRedisCluster:
    """A client for the API: a blocking pool of ``pool_size`` connections on a
    standalone Redis (a burst larger than the pool queues instead of being
    refused: redis-py's default pool answered the 101st concurrent request of
    a flash sale with "Too many connections"); ``pool_size`` connections per
    node on a cluster."""
    if is_cluster(url):
        seeds, extra = _seeds(url)
        options.setdefault("reinitialize_steps", REINITIALIZE_STEPS)
        return AsyncRedisCluster(startup_nodes=[AsyncClusterNode(h, p) for h, p in seeds],
                                 max_connections=pool_size, **extra, **options)
    return AsyncRedis.from_pool(BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=POOL_WAIT_S, **options))


class DirectCalls:
    """One command at a time on connections of its own, for the API's hot
    path (the order's FCALL): redis-py 8's ``execute_command`` costs about
    as much CPU as the rest of an order's Python (its blocking pool's
    condition, timeout and per-call observability records, the
    deprecated-argument wrapper, the retry object, a readiness probe of the
    socket on every checkout). This keeps what matters of it: at most
    ``size`` connections (a caller beyond them waits, up to ``wait_s``, then
    gets redis-py's ConnectionError, as the pool's "No connection
    available"), the client's connection settings (address, auth, socket
    timeouts, RESP version), errors raised as redis-py raises them.

    Retries: a connection that was idle in the pool and fails with a
    ConnectionError is dropped and the command sent once more on a new one
    (the server closed it while it was idle: a restart, a client timeout);
    a timeout, or the failure of a new connection, is never retried, since
    the server may have run the command. Standalone Redis only."""

    def __init__(self, client: AsyncRedis, size: int, wait_s: float = POOL_WAIT_S):
        pool = client.connection_pool
        self._make = lambda: pool.connection_class(**pool.connection_kwargs)
        self._idle: list = []
        self._slots = asyncio.Semaphore(size)
        self._wait_s = wait_s
        self._open: set = set()

    async def call(self, *args):
        await self._acquire()
        try:
            conn = self._idle.pop() if self._idle else None
            replies = None
            if conn is not None:
                try:
                    replies = await self._exchange(conn, [args])
                except redis_errors.ConnectionError:
                    pass  # idle too long on a server that dropped it: once more, on a new one
            if replies is None:
                replies = await self._exchange(self._new(), [args])
        finally:
            self._slots.release()
        if isinstance(replies[0], redis_errors.ResponseError):
            raise replies[0]
        return replies[0]

    async def pipeline(self, commands: list[tuple]) -> list:
        """Several commands in one write and one round trip (no transaction,
        no retry: a caller that needs all or nothing uses a script); their
        replies in order, an error reply as its ResponseError in the list."""
        await self._acquire()
        try:
            return await self._exchange(self._idle.pop() if self._idle else self._new(), commands)
        finally:
            self._slots.release()

    async def _acquire(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()
            return
        try:
            async with asyncio.timeout(self._wait_s):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise redis_errors.ConnectionError("No connection available.") from exc

    def _new(self):
        conn = self._make()
        self._open.add(conn)
        return conn

    async def _exchange(self, conn, commands: list[tuple]) -> list:
        """Writes ``commands`` on ``conn`` at once and reads a reply for each
        (an error reply as its ResponseError: the connection is fine). Any
        other failure drops the connection; else it is idle again."""
        try:
            if not conn.is_connected:
                await conn.connect()
            await _write(conn, [part for args in commands for part in _pack(conn, args)])
            replies = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except redis_errors.ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            self._open.discard(conn)
            await conn.disconnect()
            raise
        self._idle.append(conn)
        return replies

    async def aclose(self) -> None:
        conns, self._open, self._idle = list(self._open), set(), []
        for conn in conns:
            await conn.disconnect()


def _pack(conn, args: tuple) -> list[bytes]:
    """The command in RESP: hiredis's packer straight (a tenth of redis-py's
    pack_command, which encodes each argument in Python first), for the
    arguments it takes as they are (str, bytes, int, float); redis-py's
    own for anything else (it raises its DataError for what Redis cannot take)."""
    if _hiredis_pack is not None and all(type(a) in _PLAIN for a in args):
        return [_hiredis_pack(args)]
    return conn.pack_command(*args)


async def _write(conn, packed: list[bytes]) -> None:
    """``conn.send_packed_command`` without its ``asyncio.wait_for`` (a task
    per command, 4% of an order's CPU): a command of a few hundred bytes
    goes into the socket's buffer at once, and only a write that has to
    wait for the server to read (the buffer past its high-water mark) is
    bounded by the socket timeout. The rest, as redis-py does it."""
    writer = getattr(conn, "_writer", None)
    if writer is None or not hasattr(writer, "transport"):
        await conn.send_packed_command(packed, check_health=False)  # another redis-py: its own way
        return
    if writer.transport.is_closing():
        await conn.disconnect(nowait=True)
        raise redis_errors.ConnectionError("Connection closed by the server before write")
    try:
        writer.writelines(packed)
        if writer.transport.get_write_buffer_size():
            async with asyncio.timeout(conn.socket_timeout):
                await writer.drain()
    except TimeoutError:
        await conn.disconnect(nowait=True)
        raise redis_errors.TimeoutError("Timeout writing to socket") from None
    except (OSError, RuntimeError) as exc:
        await conn.disconnect(nowait=True)
        raise redis_errors.ConnectionError(f"Error while writing to socket: {exc}") from exc
