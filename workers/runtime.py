"""The worker process: a Dramatiq worker with onhand's actors and a watchdog.

Nothing happens at import. :func:`build` makes the broker and registers the
actors on it; :class:`WorkerProcess` runs them (``onhand worker``, and the
worker processes ``onhand serve`` starts).

Actors:
- ``drain_outbox(slot)``: holds drain slot ``slot`` for a slice of time and
  carries outbox entries to PostgreSQL (workers/outbox.py), then sends itself
  again, so each slot is drained continuously by one holder at a time.
- ``fill_waiting(sku)``: finishes a fill that stopped at the fill limit.
- ``sync_shopify()``: holds the Shopify sync slot for a slice of time, pushing
  dirty SKUs' available to Shopify (workers/shopify_sync.py), then sends
  itself again, like the drainers.
- ``push_fulfillments()``: pushes shipments of Shopify orders as fulfillments
  (workers/fulfillment.py); short, sent by the watchdog every tick.
- ``deliver_notifications(slot)``: holds notify slot ``slot`` for a slice of
  time and delivers webhooks and emails (workers/notify.py), then sends
  itself again, like the drainers.

The watchdog thread (one per process) sends ``drain_outbox`` for every slot
nobody holds (a worker died or a message was lost), re-queues unfinished
fills, raises the outbox memory alarm, keeps the notify slots held, and, when
Shopify is configured, keeps the sync running and sends ``push_fulfillments``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from redis import Redis

from engine.keys import Keys
from onhand.settings import Settings
from workers.outbox import Drainer, stats_key

log = logging.getLogger("onhand.workers")

#: Drain slots: at most this many drainers write to PostgreSQL at once.
DRAIN_SLOTS = 2
#: How long one drain_outbox message drains before handing over, seconds.
DRAIN_SLICE_S = 30.0
#: Back-off before trying PostgreSQL again after a connection failure, milliseconds.
POSTGRES_RETRY_MS = 1000
#: How often the watchdog looks, seconds.
WATCHDOG_PERIOD_S = 1.0
#: How long one sync_shopify message pushes before handing over, seconds. Long,
#: because the hand-over (a message) can take up to a second to be picked up;
#: a stopping worker ends the slice at once.
SYNC_SLICE_S = 60.0
#: Wait before trying Shopify again after it refused the access token, milliseconds.
SHOPIFY_REFUSED_RETRY_MS = 30_000
#: How long one deliver_notifications message delivers before handing over, seconds.
NOTIFY_SLICE_S = 30.0


@dataclass
class Context:
    """Connections one worker process shares between its actor threads."""

    settings: Settings
    redis: Redis
    keys: Keys
    engine: Any  # sqlalchemy.Engine, created on first use
    _shopify: Any = None
    #: Set when the process stops: long-running actors end their slice.
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def shopify(self):
        """The process's Shopify client (one bucket estimate per process)."""
        if self._shopify is None:
            from workers.shopify_client import ShopifyClient

            self._shopify = ShopifyClient.from_settings(self.settings)
        return self._shopify

    def shopify_stopped(self) -> bool:
        """The app was uninstalled: no sync, no fulfillments (data is kept)."""
        return self.redis.get(f"{self.keys.prefix}:shopify:app") == b"uninstalled"

    @classmethod
    def create(cls, settings: Settings) -> "Context":
        from persistence.db import make_engine

        redis = Redis.from_url(settings.redis_url, health_check_interval=30)
        return cls(settings, redis, Keys(settings.merchant), make_engine(settings.database_url))


def make_broker(settings: Settings, *, heartbeat_timeout_ms: int = 60_000,
                maintenance_chance: int = 1000) -> RedisBroker:
    return RedisBroker(
        url=settings.redis_url,
        namespace=f"onhand-{settings.merchant}",
        heartbeat_timeout=heartbeat_timeout_ms,
        maintenance_chance=maintenance_chance,
    )


@dataclass
class Actors:
    broker: RedisBroker
    drain_outbox: dramatiq.Actor
    fill_waiting: dramatiq.Actor
    sync_shopify: dramatiq.Actor
    push_fulfillments: dramatiq.Actor
    deliver_notifications: dramatiq.Actor


def build(settings: Settings, broker: RedisBroker, context: Context) -> Actors:
    """Registers onhand's actors on ``broker``."""

    def drain_outbox(slot: int) -> None:
        drainer = Drainer(context.redis, context.engine, context.keys, slot=slot,
                          closed_order_retention_ms=settings.closed_order_retention_s * 1000)
        report = drainer.run_for(DRAIN_SLICE_S, stop=context.stopping)
        if report.postgres_down:
            log.warning("PostgreSQL unreachable; outbox entries stay pending, retrying")
        if report.got_slot:  # keep the slot drained; a duplicate message just ends
            actors.drain_outbox.send_with_options(
                args=(slot,), delay=POSTGRES_RETRY_MS if report.postgres_down else None)

    def fill_waiting(sku: str) -> None:
        asyncio.run(_fill(context.settings, sku))

    def sync_shopify() -> None:
        from workers.shopify_sync import ShopifySync

        if context.shopify_stopped():
            return
        report = ShopifySync(context.redis, context.keys, context.shopify, settings).run_for(
            SYNC_SLICE_S, stop=context.stopping)
        if report.got_slot:  # keep the sync running; a duplicate message just ends
            actors.sync_shopify.send_with_options(
                delay=SHOPIFY_REFUSED_RETRY_MS if report.unauthorized else None)

    def push_fulfillments() -> None:
        from workers.fulfillment import FulfillmentPusher

        if context.shopify_stopped():
            return
        FulfillmentPusher(context.redis, context.engine, context.keys, context.shopify).run()

    def deliver_notifications(slot: int) -> None:
        from workers.notify import Notifier

        report = Notifier(settings, context.keys, slot=slot).run_for(NOTIFY_SLICE_S, stop=context.stopping)
        if report.got_slot and not context.stopping.is_set():  # keep the slot delivering
            actors.deliver_notifications.send(slot)

    actors = Actors(
        broker=broker,
        drain_outbox=dramatiq.actor(drain_outbox, broker=broker, queue_name="outbox",
                                    max_retries=0, time_limit=120_000),
        fill_waiting=dramatiq.actor(fill_waiting, broker=broker, queue_name="default",
                                    max_retries=20),
        sync_shopify=dramatiq.actor(sync_shopify, broker=broker, queue_name="shopify",
                                    max_retries=0, time_limit=int(SYNC_SLICE_S * 1000) + 120_000),
        push_fulfillments=dramatiq.actor(push_fulfillments, broker=broker, queue_name="shopify",
                                         max_retries=0, time_limit=300_000),
        deliver_notifications=dramatiq.actor(deliver_notifications, broker=broker, queue_name="notify",
                                             max_retries=0, time_limit=int(NOTIFY_SLICE_S * 1000) + 120_000),
    )
    return actors


async def _fill(settings: Settings, sku: str) -> None:
    from redis.asyncio import Redis as AsyncRedis

    from engine.commands import Op
    from engine.store import Store

    redis = AsyncRedis.from_url(settings.redis_url)
    try:
        store = Store(redis, settings.merchant, fill_limit=settings.fill_limit)
        await store.start()
        op = Op(op_id=f"fill-{uuid.uuid4().hex}", now_ms=int(time.time() * 1000), actor="system")
        await store.drain_fills([sku], op)
    finally:
        await redis.aclose()


class Watchdog(threading.Thread):
    def __init__(self, context: Context, actors: Actors, stop: threading.Event):
        super().__init__(name="onhand-watchdog", daemon=True)
        self.context = context
        self.actors = actors
        self.stop_event = stop
        self.alarm = False

    def run(self) -> None:
        while not self.stop_event.wait(WATCHDOG_PERIOD_S):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the watchdog must keep watching
                log.warning("watchdog: %r", exc)

    def tick(self) -> None:
        redis, keys = self.context.redis, self.context.keys
        for slot in range(DRAIN_SLOTS):
            if not redis.exists(f"{keys.prefix}:drain:slot:{slot}"):
                self.actors.drain_outbox.send(slot)
        for sku in redis.srandmember(keys.fill_queue, 20) or []:
            self.actors.fill_waiting.send(sku.decode())
        self.check_outbox_memory()
        self.keep_notifications_going()
        self.keep_shopify_going()

    def keep_notifications_going(self) -> None:
        from workers.notify import NOTIFY_SLOTS, slot_key

        redis, keys = self.context.redis, self.context.keys
        for slot in range(NOTIFY_SLOTS):
            if not redis.exists(slot_key(keys, slot)):
                self.actors.deliver_notifications.send(slot)

    def keep_shopify_going(self) -> None:
        settings, redis, keys = self.context.settings, self.context.redis, self.context.keys
        if not settings.shopify_configured or self.context.shopify_stopped():
            return
        if settings.shopify_sync_enabled and not redis.exists(f"{keys.prefix}:shopify:sync:slot"):
            self.actors.sync_shopify.send()
        if not redis.exists(f"{keys.prefix}:shopify:fulfillment:lock"):
            self.actors.push_fulfillments.send()

    def outbox_budget(self, redis: Redis) -> int:
        """Half of the live server's maxmemory (the setting when it has none)."""
        try:
            live = int(redis.config_get("maxmemory").get("maxmemory") or 0)
        except Exception:  # noqa: BLE001 - CONFIG may be disabled on managed Redis
            live = 0
        return live // 2 if live else self.context.settings.outbox_budget_bytes

    def check_outbox_memory(self) -> None:
        redis, keys = self.context.redis, self.context.keys
        used = redis.memory_usage(keys.outbox, samples=5) or 0
        budget = self.outbox_budget(redis)
        over = used > budget // 2
        redis.hset(stats_key(keys), mapping={"outbox_bytes": used, "outbox_alarm": int(over)})
        if over and not self.alarm:
            log.error("ALARM outbox uses %d bytes, over half of its budget of %d bytes: "
                      "PostgreSQL is not keeping up or is down", used, budget)
        self.alarm = over


class WorkerProcess:
    """One worker process: Dramatiq worker threads plus the watchdog."""

    def __init__(self, settings: Settings, *, threads: int = 8, heartbeat_timeout_ms: int = 60_000,
                 maintenance_chance: int = 1000):
        self.settings = settings
        self.context = Context.create(settings)
        self.broker = make_broker(settings, heartbeat_timeout_ms=heartbeat_timeout_ms,
                                  maintenance_chance=maintenance_chance)
        self.actors = build(settings, self.broker, self.context)
        self.threads = threads
        self.stop_event = threading.Event()

    def start(self) -> None:
        self.worker = dramatiq.Worker(self.broker, worker_threads=self.threads)
        self.worker.start()
        self.watchdog = Watchdog(self.context, self.actors, self.stop_event)
        self.watchdog.start()
        log.info("worker running (%d threads)", self.threads)

    def stop(self) -> None:
        self.stop_event.set()
        self.context.stopping.set()
        self.worker.stop(timeout=10_000)
        self.watchdog.join(5)
        self.broker.close()
        self.context.engine.dispose()
        if self.context._shopify is not None:
            self.context._shopify.close()
        self.context.redis.close()

    def run(self) -> None:
        """Runs until SIGTERM or SIGINT."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        self.start()
        try:
            self.stop_event.wait()
        finally:
            self.stop()
