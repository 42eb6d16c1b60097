"""Request metrics added up in the process and written in sums
(api.metrics.RouteMetrics) read exactly as if every request had been
observed on its own, within FLUSH_S."""

from __future__ import annotations

import asyncio
import random
import uuid

from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from api.metrics import FLUSH_S, LATENCY_BUCKETS_S, RouteMetrics


def _histogram(registry, name: str, route: str) -> dict:
    """(sample kind, le) -> value of the histogram ``name`` for ``route``."""
    out = {}
    for metric in registry.collect():
        if metric.name != name:
            continue
        for s in metric.samples:
            if s.labels.get("route") == route and not s.name.endswith("_created"):
                out[(s.name.removeprefix(name), s.labels.get("le"))] = s.value
    return out


def test_sums_written_later_read_as_each_request_observed_on_its_own():
    route = f"/test/{uuid.uuid4().hex}"
    rng = random.Random(7)
    seconds = [rng.choice([0.0005, 0.001, 0.0025, 0.003, 0.05, 0.25, 9.0, rng.random() / 10]) for _ in range(500)]
    registry = CollectorRegistry()
    reference = Histogram("reference", "observed one by one", ["method", "route"], buckets=LATENCY_BUCKETS_S,
                          registry=registry)
    labels = {"method": "POST", "route": route, "status": "201"}

    async def run() -> tuple[float | None, float | None]:
        metrics = RouteMetrics()
        for s in seconds:
            metrics.observe("POST", route, 201, s)
            reference.labels("POST", route).observe(s)
        written_at_once = REGISTRY.get_sample_value("onhand_http_requests_total", labels)
        await asyncio.sleep(FLUSH_S + 0.2)  # the flush comes by itself
        return written_at_once, REGISTRY.get_sample_value("onhand_http_requests_total", labels)

    at_once, later = asyncio.run(run())
    assert not at_once and later == len(seconds)  # the series exists (0) until the flush
    mine = _histogram(REGISTRY, "onhand_http_request_duration_seconds", route)
    expected = _histogram(registry, "reference", route)
    assert mine.keys() == expected.keys() and len(mine) == len(LATENCY_BUCKETS_S) + 3  # buckets, +Inf, count, sum
    for key, value in expected.items():
        assert abs(mine[key] - value) < 1e-9, key
