"""The notification worker: holds a *notify slot* for a slice of time and
runs the webhook and email loops of the merchant in one asyncio loop.

Like the drainers (workers/outbox.py), a slot is a Redis lock with an
expiry, renewed while the holder works; the watchdog sends
``deliver_notifications`` for every slot nobody holds. The slots only bound
how many processes deliver at once: the work itself is claimed from
PostgreSQL with leases, so two holders never send one delivery at once, and
a holder killed mid-delivery leaves leases that run out (another holder then
sends again, with the same ``webhook-id``).

The watermark (the oldest entry still in the outbox stream) is read here for
both loops: an event is sent only once every outbox entry before its own has
been applied, so an order's earlier event can never still be on its way to
PostgreSQL when a later one is sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis as AsyncRedis

from engine.keys import Keys
from onhand.settings import Settings
from persistence.delivery_queue import OPEN
from notifications.events import entry_position
from workers.mailer import MailLoop
from workers.webhooks import WebhookLoop

log = logging.getLogger("onhand.notify")

#: Notify slots: at most this many processes deliver at once.
NOTIFY_SLOTS = 2
#: A slot lock lives this long unless renewed, milliseconds.
SLOT_TTL_MS = 10_000
#: How often the holder renews its slot, seconds.
RENEW_S = 2.0

_RENEW = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
          "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end")
_RELEASE = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
            "return redis.call('DEL', KEYS[1]) else return 0 end")


def slot_key(keys: Keys, slot: int) -> str:
    return f"{keys.prefix}:notify:slot:{slot}"


def stats_key(keys: Keys) -> str:
    return f"{keys.prefix}:notify:stats"


@dataclass
class NotifyReport:
    got_slot: bool = False
    webhooks_delivered: int = 0
    webhooks_failed: int = 0
    webhooks_dead: int = 0
    emails_sent: int = 0
    emails_skipped: int = 0
    emails_failed: int = 0


class Notifier:
    def __init__(self, settings: Settings, keys: Keys, *, slot: int):
        self.settings = settings
        self.keys = keys
        self.slot = slot
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def run_for(self, seconds: float, stop: threading.Event | None = None) -> NotifyReport:
        return asyncio.run(self._run(seconds, stop or threading.Event()))

    async def _run(self, seconds: float, stop: threading.Event) -> NotifyReport:
        from persistence.db import make_async_engine

        report = NotifyReport()
        redis = AsyncRedis.from_url(self.settings.redis_url)
        key = slot_key(self.keys, self.slot)
        try:
            if not await redis.set(key, self.token, nx=True, px=SLOT_TTL_MS):
                return report
            report.got_slot = True
            lost = asyncio.Event()

            async def watermark() -> tuple[int, int] | None:
                try:
                    first = await redis.xrange(self.keys.outbox, count=1)
                except OSError as exc:
                    log.warning("notify: Redis unreachable (%s)", exc)
                    return None
                return entry_position(first[0][0].decode()) if first else OPEN

            async def keep_slot() -> None:
                while not lost.is_set():
                    await asyncio.sleep(RENEW_S)
                    if not await redis.eval(_RENEW, 1, key, self.token, SLOT_TTL_MS):
                        lost.set()

            pg = make_async_engine(self.settings.database_url, pool_size=4)
            merchant = self.keys.merchant
            hooks = WebhookLoop(pg, self.settings, merchant, self.token, watermark)
            mail = MailLoop(pg, self.settings, merchant, self.token, watermark)
            deadline = time.monotonic() + seconds
            renewer = asyncio.create_task(keep_slot())
            try:
                def stopped() -> bool:
                    return stop.is_set() or lost.is_set()

                await asyncio.gather(hooks.run(deadline, stopped), mail.run(deadline, stopped))
            finally:
                lost.set()
                renewer.cancel()
                await pg.dispose()
                await redis.eval(_RELEASE, 1, key, self.token)
            report.webhooks_delivered, report.webhooks_failed = hooks.delivered, hooks.failed
            report.webhooks_dead = hooks.dead
            report.emails_sent, report.emails_skipped, report.emails_failed = mail.sent, mail.skipped, mail.failed
            await redis.hincrby(stats_key(self.keys), "webhooks_delivered", hooks.delivered)
            await redis.hincrby(stats_key(self.keys), "webhook_attempts_failed", hooks.failed)
            await redis.hincrby(stats_key(self.keys), "webhooks_dead", hooks.dead)
            await redis.hincrby(stats_key(self.keys), "emails_sent", mail.sent)
            return report
        finally:
            await redis.aclose()
