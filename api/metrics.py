"""Prometheus metrics (prometheus-client).

Per-process counters (requests, latency, reservations per channel) go to the
process registry, or to the multiprocess directory when
PROMETHEUS_MULTIPROC_DIR is set (``serve --api-processes N``). Values that
belong to the whole deployment (exception units, outbox backlog and age, dead
letters, Shopify sync lag) are read from Redis at scrape time.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import time
import weakref
from functools import cache

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess

from engine.keys import Keys

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ProcessMetrics:
    def __init__(self, registry: CollectorRegistry | None):
        kw = {"registry": registry} if registry is not None else {}
        self.requests = Counter("onhand_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], **kw)
        self.latency = Histogram("onhand_http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], buckets=LATENCY_BUCKETS_S, **kw)
        self.reservations = Counter(
            "onhand_reservations_total",
            "Orders by channel and outcome (accepted in full, partially, refused)",
            ["channel", "outcome"], **kw)


@cache
def process_metrics() -> ProcessMetrics:
    """Created on first use, once per process (prometheus-client's registry is global)."""
    return ProcessMetrics(None)


class RouteMetrics:
    """Counts each request in the request counter and latency histogram.

    Observations are added up in the process and written to prometheus-client
    at most :data:`FLUSH_S` later, a sum per series: with ``serve`` each
    write is a locked write to a shared memory file (three per request, 3%
    of an order's CPU at full rate), and a scrape reads the files of every
    process. The histogram's buckets and sum get the totals directly (its
    ``_buckets`` and ``_sum``; where a prometheus-client lacks them, each
    observation is written as it comes)."""

    def __init__(self) -> None:
        self._series: dict[tuple, tuple] = {}
        #: (method, route, status) -> [requests, seconds in all, count per bucket]
        self._pending: dict[tuple, list] = {}
        _route_metrics.add(self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            m = process_metrics()
            hist = m.latency.labels(method, route)
            bounds = tuple(getattr(hist, "_upper_bounds", ()))
            bulk = bool(bounds) and hasattr(hist, "_sum") and len(getattr(hist, "_buckets", ())) == len(bounds)
            series = self._series[key] = (m.requests.labels(method, route, str(status)), hist,
                                          bounds if bulk else None)
        bounds = series[2]
        if bounds is None:
            series[0].inc()
            series[1].observe(seconds)
            return
        pending = self._pending.get(key)
        if pending is None:
            if not self._pending:
                asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
            pending = self._pending[key] = [0, 0.0, [0] * len(bounds)]
        pending[0] += 1
        pending[1] += seconds
        # the first bucket whose upper bound is at least the value (as observe() picks it)
        pending[2][bisect.bisect_left(bounds, seconds)] += 1

    def flush(self) -> None:
        """Writes what was observed since the last flush."""
        pending, self._pending = self._pending, {}
        for key, (count, total, buckets) in pending.items():
            counter, hist, _ = self._series[key]
            counter.inc(count)
            hist._sum.inc(total)
            for i, n in enumerate(buckets):
                if n:
                    hist._buckets[i].inc(n)


#: Longest a request's count waits to be written, seconds (a scrape of this
#: process writes its own at once; another process's may be this late).
FLUSH_S = 0.5
#: This process's RouteMetrics, flushed before a scrape renders them.
_route_metrics: "weakref.WeakSet[RouteMetrics]" = weakref.WeakSet()


def record_order(channel: str, outcome: str) -> None:
    process_metrics().reservations.labels(channel, outcome).inc()


async def render(redis, keys: Keys) -> tuple[bytes, str]:
    """The text exposition: this deployment's process metrics plus gauges read
    from Redis now."""
    for metrics in list(_route_metrics):
        metrics.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        process_metrics()
        body = generate_latest(REGISTRY)
    return body + await _deployment_metrics(redis, keys), CONTENT_TYPE_LATEST


async def _deployment_metrics(redis, keys: Keys) -> bytes:
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> None:
        g = Gauge(name, doc, list(labels or {}), registry=registry)
        (g.labels(**labels) if labels else g).set(value)

    skus = [m.decode() for m in await redis.zrange(keys.skus, 0, -1)]
    exception_units = 0
    async with redis.pipeline(transaction=False) as pipe:
        for sku in skus:
            pipe.hget(keys.sku(sku), "ex")
        for value in await pipe.execute():
            exception_units += int(value or 0)
    gauge("onhand_exception_units", "DTC units sold but not covered by stock (oversell exposure)",
          exception_units)
    gauge("onhand_skus", "SKUs in the pool", len(skus))
    backlog = await redis.xlen(keys.outbox)
    gauge("onhand_outbox_backlog", "Outbox entries not yet written to PostgreSQL", backlog)
    first = await redis.xrange(keys.outbox, count=1)
    age_s = 0.0
    if first:
        ms = int(first[0][0].decode().split("-")[0])
        age_s = max(0.0, time.time() - ms / 1000)
    gauge("onhand_outbox_oldest_age_seconds", "Age of the oldest outbox entry", age_s)
    stats = {k.decode(): v.decode() for k, v in (await redis.hgetall(f"{keys.prefix}:stats")).items()}
    gauge("onhand_outbox_applied", "Outbox entries written to PostgreSQL (since the counter began)",
          float(stats.get("applied", 0)))
    gauge("onhand_outbox_redelivered", "Outbox entries read again after a worker died",
          float(stats.get("redelivered", 0)))
    gauge("onhand_dead_letters", "Outbox entries moved to the dead_letters table",
          float(stats.get("dead_letters", 0)))
    gauge("onhand_outbox_bytes", "Memory the outbox stream uses", float(stats.get("outbox_bytes", 0)))
    gauge("onhand_outbox_alarm", "1 when the outbox passed half of its memory budget",
          float(stats.get("outbox_alarm", 0)))
    notify = {k.decode(): v.decode() for k, v in (await redis.hgetall(f"{keys.prefix}:notify:stats")).items()}
    gauge("onhand_webhooks_delivered", "Webhook deliveries answered 2xx (since the counter began)",
          float(notify.get("webhooks_delivered", 0)))
    gauge("onhand_webhook_attempts_failed", "Webhook attempts that failed and will be retried",
          float(notify.get("webhook_attempts_failed", 0)))
    gauge("onhand_webhooks_dead", "Webhook deliveries dead-lettered after the retry window (endpoint disabled)",
          float(notify.get("webhooks_dead", 0)))
    gauge("onhand_emails_sent", "Emails sent (or written as .eml files)", float(notify.get("emails_sent", 0)))
    sync = {k.decode(): v.decode() for k, v in (await redis.hgetall(f"{keys.prefix}:sync:stats")).items()}
    if sync:
        gauge("onhand_shopify_sync_lag_seconds", "Time from a stock change to its push to Shopify (last push)",
              float(sync.get("lag_ms", 0)) / 1000)
        gauge("onhand_shopify_dirty_skus", "SKUs waiting to be pushed to Shopify",
              float(await redis.scard(keys.dirty)))
    return generate_latest(registry)
