"""Live counters for the inventory screen, fed by Redis.

Every change of stock appends to the merchant's outbox stream in the same
script that makes it, but the drainer deletes entries once PostgreSQL has
them, so a reader cannot count on seeing each one. The stream is used as a
wake-up instead: one watcher per process blocks on it (XREAD BLOCK from the
newest entry) and, whenever anything was appended, tells every open screen,
which then reads the counters of the SKUs it shows from their hashes (one
pipelined read). Each screen also reads every TICK_S and sends a heartbeat,
so a change whose entry was deleted before the watcher saw it shows within a
tick, and a silent stream means a broken one (the page's "stale" banner).
One blocked connection per process, however many screens are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from redis import exceptions as redis_errors

from engine.model import Inventory
from engine.store import Store

log = logging.getLogger("onhand.ui")

#: How long the watcher blocks on the outbox per call, milliseconds.
BLOCK_MS = 1000
#: A screen reads its counters at least this often, and sends a heartbeat, seconds.
TICK_S = 1.0
#: Shortest gap between two reads of one screen, seconds (a burst of changes
#: is one read per gap, not one per change).
MIN_GAP_S = 0.05


def counters(inv: Inventory | None, sync: tuple[Any, Any]) -> dict[str, Any] | None:
    """The numbers the inventory screen shows for a SKU."""
    if inv is None:
        return None
    pushed, pushed_at = sync
    return {
        "on_hand": inv.on_hand, "reserved_dtc": inv.reserved_dtc, "reserved_wholesale": inv.reserved_wholesale,
        "dtc_reserve": inv.dtc_reserve, "available": inv.available,
        "available_to_wholesale": inv.available_to_wholesale, "backordered": inv.backordered,
        "exception": inv.exception,
        "pushed": int(pushed) if pushed is not None else None,
        "pushed_at_ms": int(pushed_at) if pushed_at is not None else None,
    }


async def read_counters(store: Store, skus: list[str]) -> dict[str, dict[str, Any] | None]:
    """Counters and the Shopify sync state (P:sy:<sku>: last quantity pushed
    and when) of these SKUs, in one round trip."""
    inventory = await store.inventory(skus)
    prefix = store.keys.prefix
    async with store.redis.pipeline(transaction=False) as pipe:
        for sku in skus:
            pipe.hmget(f"{prefix}:sy:{sku}", "p", "pt")
        sync = await pipe.execute()
    return {sku: counters(inv, tuple(state)) for sku, inv, state in zip(skus, inventory, sync, strict=True)}


class LiveCounters:
    """The process's outbox watcher and the screens it wakes."""

    def __init__(self, store: Store):
        self.store = store
        self._changed = asyncio.Condition()
        self._generation = 0
        self._subscribers = 0
        self._task: asyncio.Task | None = None

    async def _watch(self) -> None:
        redis, stream = self.store.redis, self.store.keys.outbox
        last = "$"
        while self._subscribers:
            try:
                got = await redis.xread({stream: last}, block=BLOCK_MS, count=1000)
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                log.warning("live counters: Redis unreachable (%r); retrying", exc)
                await asyncio.sleep(TICK_S)
                continue
            if got:
                entries = got[0][1]
                last = entries[-1][0]
                async with self._changed:
                    self._generation += 1
                    self._changed.notify_all()

    def _ensure_watcher(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stream(self, skus: list[str]) -> AsyncIterator[dict[str, Any]]:
        """Snapshots of ``skus``: the first at once, then whenever one of them
        changed (read after a wake-up or a tick), with a heartbeat each tick."""
        self._subscribers += 1
        self._ensure_watcher()
        loop = asyncio.get_running_loop()
        last: dict[str, Any] = {}
        try:
            seen = self._generation
            while True:
                changed = {sku: c for sku, c in (await read_counters(self.store, skus)).items()
                           if last.get(sku) != c}
                last.update(changed)
                yield {"type": "counters", "skus": changed} if changed \
                    else {"type": "heartbeat"}
                began = loop.time()
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait_for(lambda: self._generation != seen),
                                               timeout=TICK_S)
                    seen = self._generation
                gap = MIN_GAP_S - (loop.time() - began)
                if gap > 0:
                    await asyncio.sleep(gap)
        finally:
            self._subscribers -= 1

    async def close(self) -> None:
        self._subscribers = 0
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
