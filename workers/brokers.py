"""The Dramatiq broker the workers of a deployment share.

By default the broker is the Redis of ``ONHAND_REDIS_URL`` (its keys under
the deployment's namespace). ``ONHAND_BROKER_URL`` names another one:

- ``amqp://user:pass@host:5672/vhost`` (or ``amqps://``): RabbitMQ, through
  Dramatiq's RabbitmqBroker (pika). Queues are durable, messages persistent,
  every publish waits for RabbitMQ's confirm, and a message is acknowledged
  only after its actor has returned (or after Dramatiq has re-sent it for a
  retry), so a worker killed mid-message loses nothing: RabbitMQ hands its
  unacknowledged messages, prefetched or running, to another consumer as soon
  as the connection drops.
- ``redis://host:6379/1`` (or ``rediss://``, ``unix://``): a standalone
  Redis of its own, for a deployment whose data store is a Redis Cluster.

Dramatiq's Redis broker runs Lua that touches keys of several queues at
once, which a Redis Cluster refuses (keys in different slots), so with a
``redis+cluster://`` data store :func:`make_broker` refuses to start
without ``ONHAND_BROKER_URL``.

Queue names on RabbitMQ start with the deployment's namespace
(``ONHAND_BROKER_NAMESPACE``, default ``onhand-<merchant>``), as the Redis
broker's keys do, so deployments sharing one RabbitMQ (or one virtual host)
never share queues. Nothing connects at import: pika is imported when a
RabbitMQ broker is made.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from dramatiq.broker import Broker

from onhand.redis_clients import CLUSTER_SCHEMES, is_cluster
from onhand.settings import Settings

#: The queues onhand's actors use (before the namespace).
QUEUES = ("outbox", "default", "shopify", "edi", "notify")
#: What Dramatiq adds to a queue's name for its delayed and dead-letter queues.
QUEUE_SUFFIXES = ("", ".DQ", ".XQ")
RABBITMQ_SCHEMES = ("amqp", "amqps")
REDIS_SCHEMES = ("redis", "rediss", "unix")


class BrokerRefused(Exception):
    """Raised when the configured broker cannot carry onhand's messages
    (a Redis Cluster as the Redis broker, an unknown scheme, pika missing)."""


def namespace(settings: Settings) -> str:
    """The deployment's prefix for queue names (RabbitMQ) and keys (Redis)."""
    return settings.broker_namespace or f"onhand-{settings.merchant}"


def uses_rabbitmq(settings: Settings) -> bool:
    return bool(settings.broker_url) and urlsplit(settings.broker_url).scheme in RABBITMQ_SCHEMES


def queue_name(settings: Settings, base: str) -> str:
    """The name of onhand's queue ``base`` on this deployment's broker. The
    Redis broker keeps the bare name (its keys carry the namespace already)."""
    return f"{namespace(settings)}.{base}" if uses_rabbitmq(settings) else base


def describe(settings: Settings) -> str:
    """The broker in words for logs, without credentials."""
    url = settings.broker_url or settings.redis_url or "redis://localhost:6379"
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path} (namespace {namespace(settings)})"


def check(settings: Settings) -> None:
    """Raises BrokerRefused if :func:`make_broker` would (no connection made)."""
    url = settings.broker_url
    if url is None:
        if is_cluster(settings.redis_url):
            raise BrokerRefused(
                "ONHAND_REDIS_URL names a Redis Cluster, where Dramatiq's Redis broker cannot run "
                "(its Lua scripts touch keys in several hash slots). Set ONHAND_BROKER_URL to a "
                "RabbitMQ (amqp://user:password@host:5672/vhost) or to a standalone Redis "
                "(redis://host:6379/1).")
        return
    scheme = urlsplit(url).scheme
    if scheme in CLUSTER_SCHEMES:
        raise BrokerRefused("ONHAND_BROKER_URL names a Redis Cluster, where Dramatiq's Redis broker "
                            "cannot run: name a RabbitMQ (amqp://) or a standalone Redis (redis://)")
    if scheme in RABBITMQ_SCHEMES:
        try:
            import pika  # noqa: F401
        except ImportError:
            raise BrokerRefused("ONHAND_BROKER_URL names RabbitMQ but pika is not installed "
                                "(it is one of onhand's dependencies: reinstall onhand)") from None
        return
    if scheme not in REDIS_SCHEMES:
        raise BrokerRefused(f"ONHAND_BROKER_URL must be amqp://, amqps://, redis://, rediss:// or "
                            f"unix://, not {scheme}://")


def make_broker(settings: Settings, *, heartbeat_timeout_ms: int = 60_000,
                maintenance_chance: int = 1000) -> Broker:
    """The deployment's broker. ``heartbeat_timeout_ms`` and
    ``maintenance_chance`` tune the Redis broker's recovery of a dead
    worker's messages (RabbitMQ recovers them when the connection drops)."""
    check(settings)
    if uses_rabbitmq(settings):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # confirm_delivery: send() returns once RabbitMQ has the message (and
        # re-declares a queue someone deleted instead of dropping the message)
        return RabbitmqBroker(url=settings.broker_url, confirm_delivery=True)
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=settings.broker_url or settings.redis_url, namespace=namespace(settings),
                       heartbeat_timeout=heartbeat_timeout_ms, maintenance_chance=maintenance_chance)


def delete_queues(settings: Settings) -> list[str]:
    """Deletes the deployment's queues on RabbitMQ (with their delayed and
    dead-letter queues, and any messages in them); returns their names.
    For removing a deployment, and for tests, which each use their own
    namespace. Does nothing for the Redis broker."""
    if not uses_rabbitmq(settings):
        return []
    import pika

    names = [queue_name(settings, base) + suffix for base in QUEUES for suffix in QUEUE_SUFFIXES]
    connection = pika.BlockingConnection(pika.URLParameters(settings.broker_url))
    try:
        channel = connection.channel()
        for name in names:
            channel.queue_delete(name)  # a queue that does not exist is no error
    finally:
        connection.close()
    return names
