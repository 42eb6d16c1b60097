"""Redis clients for a standalone Redis or a Redis / Valkey Cluster.

``ONHAND_REDIS_URL`` names a cluster with the scheme ``redis+cluster://``
(or ``rediss+cluster://`` for TLS) and one or more seed nodes:
``redis+cluster://10.0.0.1:7000,10.0.0.2:7000/0``. The client learns the
rest of the cluster from them. Every key of a merchant shares its hash tag,
so each operation stays in one slot on whichever node holds it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from redis import Redis
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
