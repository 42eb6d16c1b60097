"""The worker process: a Dramatiq worker with onhand's actors and a watchdog.

Nothing happens at import. :func:`build` makes the broker and registers the
actors on it; :class:`WorkerProcess` runs them (``onhand worker``, and the
worker processes ``onhand serve`` starts).

Every actor works for one merchant (its first argument); each merchant has
its own outbox stream, drain slots and Shopify channel, so the workers of a
deployment serve all its merchants (persistence/merchants.py lists them;
the list is read again every MERCHANTS_REFRESH_S).

Actors:
- ``drain_outbox(merchant, slot)``: holds the merchant's drain slot ``slot``
  and carries its outbox entries to PostgreSQL (workers/outbox.py) while they
  keep coming, for at most a slice of time; then sends itself again while
  entries remain, or ends once the stream has been idle for DRAIN_IDLE_S, so
  a quiet merchant costs no worker thread.
- ``fill_waiting(merchant, sku)``: finishes a fill that stopped at the fill limit.
- ``sync_shopify(merchant)``: holds the merchant's Shopify sync slot for a
  slice of time, pushing dirty SKUs' available to Shopify
  (workers/shopify_sync.py), then sends itself again, like the drainers.
- ``push_fulfillments(merchant)``: pushes shipments of Shopify orders as
  fulfillments (workers/fulfillment.py); short, sent by the watchdog every tick.
- ``deliver_notifications(merchant, slot)``: holds the merchant's notify slot
  ``slot`` for a slice of time and delivers its webhooks and emails
  (workers/notify.py); the watchdog sends it while the merchant has
  deliveries pending.
- ``edi_shipment_documents(merchant)`` and ``edi_scan_inbox()``: 856/810 per
  shipment of an EDI order, and the ONHAND_EDI_INBOX folder (the home
  merchant's; workers/edi.py); sent by the watchdog every tick.

The watchdog thread (one per process) sends ``drain_outbox`` for every free
slot of a merchant whose outbox holds entries (a worker died, a message was
lost, or the drainer went idle), re-queues unfinished fills, raises the
outbox memory alarm, and, for merchants with Shopify configured, keeps the
sync running and sends ``push_fulfillments``.
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
from dramatiq.broker import Broker
from redis import Redis

from engine.keys import Keys
from onhand.settings import Settings
from workers.brokers import describe, make_broker, queue_name
from workers.outbox import Drainer, stats_key

log = logging.getLogger("onhand.workers")

#: Drain slots: at most this many drainers write to PostgreSQL at once.
DRAIN_SLOTS = 2
#: How long one drain_outbox message drains before handing over, seconds.
DRAIN_SLICE_S = 30.0
#: A drainer whose stream stays empty this long lets its slot go, seconds.
DRAIN_IDLE_S = 2.0
#: How often the watchdog reads the list of merchants again, seconds.
MERCHANTS_REFRESH_S = 10.0
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
    """Connections one worker process shares between its actor threads, and
    what it knows of the deployment's merchants."""

    settings: Settings
    redis: Redis
    engine: Any  # sqlalchemy.Engine
    #: Shopify clients by merchant (one bucket estimate per shop and process).
    _shopify: dict[str, Any] = field(default_factory=dict)
    _merchants: list[str] = field(default_factory=list)
    _merchants_at: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set when the process stops: long-running actors end their slice.
    stopping: threading.Event = field(default_factory=threading.Event)

    def keys(self, merchant: str) -> Keys:
        return Keys(merchant)

    def merchants(self) -> list[str]:
        """Every merchant of the deployment (the home merchant first), read
        from PostgreSQL at most every MERCHANTS_REFRESH_S; while PostgreSQL is
        down, the list last read."""
        from persistence import merchants

        now = time.monotonic()
        if now - self._merchants_at >= MERCHANTS_REFRESH_S or not self._merchants:
            try:
                with self.engine.connect() as conn:
                    self._merchants = merchants.ids(conn, self.settings.merchant)
            except Exception as exc:  # noqa: BLE001 - keep serving the merchants known
                log.warning("cannot read the merchants from PostgreSQL: %r", exc)
                self._merchants = self._merchants or [self.settings.merchant]
            self._merchants_at = now
        return self._merchants

    def settings_for(self, merchant: str) -> Settings:
        """The settings as they apply to ``merchant`` (its Shopify channel)."""
        from persistence import merchants

        if merchant == self.settings.merchant:
            return self.settings
        return merchants.settings_for(self.settings, merchant,
                                      merchants.read_registry(self.redis, self.settings.merchant).get(merchant))

    def shopify(self, merchant: str):
        """The merchant's Shopify client."""
        with self._lock:
            client = self._shopify.get(merchant)
            if client is None:
                from workers.shopify_client import ShopifyClient

                client = self._shopify[merchant] = ShopifyClient.from_settings(self.settings_for(merchant))
            return client

    def shopify_stopped(self, merchant: str) -> bool:
        """The app was uninstalled: no sync, no fulfillments (data is kept)."""
        return self.redis.get(f"{Keys(merchant).prefix}:shopify:app") == b"uninstalled"

    def close(self) -> None:
        for client in self._shopify.values():
            client.close()
        self.engine.dispose()
        self.redis.close()

    @classmethod
    def create(cls, settings: Settings) -> "Context":
        from persistence.db import make_engine

        from onhand.redis_clients import sync_client

        redis = sync_client(settings.redis_url, health_check_interval=30)
        return cls(settings, redis, make_engine(settings.database_url))


@dataclass
class Actors:
    broker: Broker
    drain_outbox: dramatiq.Actor
    fill_waiting: dramatiq.Actor
    sync_shopify: dramatiq.Actor
    push_fulfillments: dramatiq.Actor
    edi_shipment_documents: dramatiq.Actor | None = None
    edi_scan_inbox: dramatiq.Actor | None = None
    deliver_notifications: dramatiq.Actor | None = None


#: Longest wait between two retries of fill_waiting, milliseconds. Dramatiq's
#: default (7 days) would keep a delayed message unacknowledged on a RabbitMQ
#: consumer past RabbitMQ's consumer_timeout (30 minutes by default).
FILL_MAX_BACKOFF_MS = 600_000


def build(settings: Settings, broker: Broker, context: Context) -> Actors:
    """Registers onhand's actors on ``broker`` (their queues under the
    deployment's namespace, workers/brokers.py)."""

    def q(base: str) -> str:
        return queue_name(settings, base)

    def drain_outbox(merchant: str, slot: int) -> None:
        drainer = Drainer(context.redis, context.engine, context.keys(merchant), slot=slot,
                          closed_order_retention_ms=settings.closed_order_retention_s * 1000)
        report = drainer.run_for(DRAIN_SLICE_S, stop=context.stopping, idle_s=DRAIN_IDLE_S)
        if report.postgres_down:
            log.warning("PostgreSQL unreachable; outbox entries of %s stay pending, retrying", merchant)
        # keep the slot drained while there is work; a duplicate message just ends
        if report.got_slot and (report.postgres_down or not report.went_idle):
            actors.drain_outbox.send_with_options(
                args=(merchant, slot), delay=POSTGRES_RETRY_MS if report.postgres_down else None)

    def fill_waiting(merchant: str, sku: str) -> None:
        asyncio.run(_fill(context.settings, merchant, sku))

    def sync_shopify(merchant: str) -> None:
        from workers.shopify_sync import ShopifySync

        if context.shopify_stopped(merchant):
            return
        report = ShopifySync(context.redis, context.keys(merchant), context.shopify(merchant),
                             context.settings_for(merchant)).run_for(SYNC_SLICE_S, stop=context.stopping)
        if report.got_slot:  # keep the sync running; a duplicate message just ends
            actors.sync_shopify.send_with_options(
                args=(merchant,), delay=SHOPIFY_REFUSED_RETRY_MS if report.unauthorized else None)

    def push_fulfillments(merchant: str) -> None:
        from workers.fulfillment import FulfillmentPusher

        if context.shopify_stopped(merchant):
            return
        FulfillmentPusher(context.redis, context.engine, context.keys(merchant), context.shopify(merchant)).run()

    def edi_shipment_documents(merchant: str) -> None:
        from workers import edi

        edi.shipment_documents(context, merchant)

    def edi_scan_inbox() -> None:
        from workers import edi

        edi.scan_inbox(settings)

    def deliver_notifications(merchant: str, slot: int) -> None:
        from workers.notify import Notifier

        Notifier(context.settings_for(merchant), context.keys(merchant), slot=slot).run_for(
            NOTIFY_SLICE_S, stop=context.stopping)
        # the watchdog sends it again while the merchant has deliveries pending

    actors = Actors(
        broker=broker,
        drain_outbox=dramatiq.actor(drain_outbox, broker=broker, queue_name=q("outbox"),
                                    max_retries=0, time_limit=120_000),
        fill_waiting=dramatiq.actor(fill_waiting, broker=broker, queue_name=q("default"),
                                    max_retries=20, max_backoff=FILL_MAX_BACKOFF_MS),
        sync_shopify=dramatiq.actor(sync_shopify, broker=broker, queue_name=q("shopify"),
                                    max_retries=0, time_limit=int(SYNC_SLICE_S * 1000) + 120_000),
        push_fulfillments=dramatiq.actor(push_fulfillments, broker=broker, queue_name=q("shopify"),
                                         max_retries=0, time_limit=300_000),
        edi_shipment_documents=dramatiq.actor(edi_shipment_documents, broker=broker, queue_name=q("edi"),
                                              max_retries=0, time_limit=300_000),
        edi_scan_inbox=dramatiq.actor(edi_scan_inbox, broker=broker, queue_name=q("edi"),
                                      max_retries=0, time_limit=600_000),
        deliver_notifications=dramatiq.actor(deliver_notifications, broker=broker, queue_name=q("notify"),
                                             max_retries=0, time_limit=int(NOTIFY_SLICE_S * 1000) + 120_000),
    )
    return actors


async def _fill(settings: Settings, merchant: str, sku: str) -> None:
    from engine.commands import Op
    from engine.store import Store
    from onhand.redis_clients import async_client

    redis = async_client(settings.redis_url, pool_size=2)
    try:
        store = Store(redis, merchant, fill_limit=settings.fill_limit)
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
        merchants = self.context.merchants()
        for merchant in merchants:
            self.tick_merchant(merchant)
        self.check_outbox_memory(merchants)
        self.keep_notifications_going()
        if self.context.settings.edi_inbox is not None:
            self.actors.edi_scan_inbox.send()

    def tick_merchant(self, merchant: str) -> None:
        redis, keys = self.context.redis, self.context.keys(merchant)
        with redis.pipeline(transaction=False) as pipe:
            for slot in range(DRAIN_SLOTS):
                pipe.exists(f"{keys.prefix}:drain:slot:{slot}")
            pipe.xlen(keys.outbox)
            pipe.srandmember(keys.fill_queue, 20)
            *held, backlog, waiting = pipe.execute()
        if backlog:  # a drainer is needed (entries pending on a dead consumer stay in the stream)
            for slot, taken in enumerate(held):
                if not taken:
                    self.actors.drain_outbox.send(merchant, slot)
        for sku in waiting or []:
            self.actors.fill_waiting.send(merchant, sku.decode())
        self.keep_shopify_going(merchant)
        if not redis.exists(f"{keys.prefix}:edi:shipdocs:lock"):
            self.actors.edi_shipment_documents.send(merchant)

    def keep_notifications_going(self) -> None:
        """A notify loop for each merchant with deliveries pending (one query
        for all merchants: a quiet merchant holds no worker thread)."""
        from persistence.delivery_queue import merchants_with_work
        from workers.notify import NOTIFY_SLOTS, slot_key

        redis = self.context.redis
        with self.context.engine.connect() as conn:
            busy = merchants_with_work(conn)
        for merchant in busy:
            for slot in range(NOTIFY_SLOTS):
                if not redis.exists(slot_key(Keys(merchant), slot)):
                    self.actors.deliver_notifications.send(merchant, slot)

    def keep_shopify_going(self, merchant: str) -> None:
        settings, redis, keys = self.context.settings_for(merchant), self.context.redis, Keys(merchant)
        if not settings.shopify_configured or self.context.shopify_stopped(merchant):
            return
        if settings.shopify_sync_enabled and not redis.exists(f"{keys.prefix}:shopify:sync:slot"):
            self.actors.sync_shopify.send(merchant)
        if not redis.exists(f"{keys.prefix}:shopify:fulfillment:lock"):
            self.actors.push_fulfillments.send(merchant)

    def outbox_budget(self, redis: Redis) -> int:
        """Half of the live server's maxmemory (the setting when it has none)."""
        try:
            live = int(redis.config_get("maxmemory").get("maxmemory") or 0)
        except Exception:  # noqa: BLE001 - CONFIG may be disabled on managed Redis
            live = 0
        return live // 2 if live else self.context.settings.outbox_budget_bytes

    def check_outbox_memory(self, merchants: list[str]) -> None:
        """The outboxes of all merchants share one Redis's memory: the alarm
        is on their sum; each merchant's stats say its own part."""
        redis = self.context.redis
        used_by = {m: redis.memory_usage(Keys(m).outbox, samples=5) or 0 for m in merchants}
        used = sum(used_by.values())
        budget = self.outbox_budget(redis)
        over = used > budget // 2
        for merchant, part in used_by.items():
            redis.hset(stats_key(Keys(merchant)), mapping={"outbox_bytes": part, "outbox_alarm": int(over)})
        if over and not self.alarm:
            log.error("ALARM the outboxes use %d bytes, over half of their budget of %d bytes: "
                      "PostgreSQL is not keeping up or is down", used, budget)
        self.alarm = over


class WorkerProcess:
    """One worker process: Dramatiq worker threads plus the watchdog."""

    def __init__(self, settings: Settings, *, threads: int = 8, heartbeat_timeout_ms: int = 60_000,
                 maintenance_chance: int = 1000):
        self.settings = settings
        self.broker = make_broker(settings, heartbeat_timeout_ms=heartbeat_timeout_ms,
                                  maintenance_chance=maintenance_chance)
        self.context = Context.create(settings)
        self.actors = build(settings, self.broker, self.context)
        self.threads = threads
        self.stop_event = threading.Event()

    def start(self) -> None:
        self.worker = dramatiq.Worker(self.broker, worker_threads=self.threads)
        self.worker.start()
        self.watchdog = Watchdog(self.context, self.actors, self.stop_event)
        self.watchdog.start()
        log.info("worker running (%d threads, broker %s)", self.threads, describe(self.settings))

    def stop(self) -> None:
        """Stops the actors and the watchdog and closes the connections (once)."""
        if self.context.stopping.is_set():
            return
        self.stop_event.set()
        self.context.stopping.set()
        self.worker.stop(timeout=10_000)
        self.watchdog.join(5)
        self.broker.close()
        self.context.close()

    def run(self) -> None:
        """Runs until SIGTERM or SIGINT."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        self.start()
        try:
            self.stop_event.wait()
        finally:
            self.stop()
