"""`onhand bench webhooks`: what outbound webhooks cost and how fast they go.

One `onhand serve` (1 API process, 1 worker process) on Valkey (AOF always)
and PostgreSQL (fsync on), embedded or given; a farm of local receivers in
its own process (loadtests/receivers.py); orders sent over HTTP by this
process (32 concurrent clients, one-line wholesale orders). In one run:

1. the order path's rate without endpoints, with 10 subscribed endpoints
   (every order is one order.created to each), and without again (the 10
   disabled): the ratio is the cost of webhooks to taking orders;
2. the order rate while those 10 endpoints are down (connections refused),
   answer 500, or answer after 10 s (the delivery timeout is 2 s): orders
   keep their speed meanwhile;
3. delivery throughput with 10 endpoints and with 100: orders placed at
   once, then the time until every endpoint has every event.

Prints progress per phase and ends with the summary table; writes
``webhooks.md`` to ``--out``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from loadtests.stack import ADMIN_KEY, Service, cpu_seconds, remove, scratch_dir, servers
from onhand.embedded import _child_setup
from onhand.settings import Settings

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CLIENTS = 32


@dataclass
class Sizes:
    phase_s: float
    delivery_orders: int
    endpoints: int = 100
    subscribed: int = 10


FULL = Sizes(phase_s=15.0, delivery_orders=200)
QUICK = Sizes(phase_s=3.0, delivery_orders=10)


@dataclass
class Phase:
    name: str
    orders: int
    seconds: float
    p50_ms: float
    p99_ms: float
    worker_cpu_s: float
    #: Deliveries the receivers answered with 2xx during the phase.
    delivered: int = 0

    @property
    def rate(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0


def _say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


class Farm:
    """The receivers' process and its control port."""

    def __init__(self, workdir: Path, count: int):
        self.file = workdir / "receivers.json"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loadtests.receivers", str(self.file), str(count)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # dies with the bench (forked from the main thread)
            preexec_fn=_child_setup(os.getpid(), None, None, signal.SIGTERM))  # noqa: PLW1509
        deadline = time.monotonic() + 30
        while not self.file.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the receivers did not start")
            time.sleep(0.05)
        info = json.loads(self.file.read_text())
        self.control = f"http://127.0.0.1:{info['control']}"
        self.ports: list[int] = info["ports"]

    def mode(self, mode: str) -> None:
        httpx.post(f"{self.control}/mode/{mode}", timeout=30).raise_for_status()

    def stats(self) -> dict:
        return httpx.get(f"{self.control}/stats", timeout=30).json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


async def _orders_for(client: httpx.AsyncClient, seconds: float, tag: str) -> tuple[int, list[float]]:
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    body = {"channel": "wholesale", "lines": [{"sku": "BENCH", "quantity": 1}]}

    async def one_client(c: int) -> None:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            r = await client.post("/v1/orders", json=body, headers=ADMIN)
            if r.status_code != 201:
                raise RuntimeError(f"order refused: {r.status_code} {r.text[:200]}")
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(one_client(c) for c in range(CLIENTS)))
    return len(latencies), latencies


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def _phase(client: httpx.AsyncClient, service: Service, farm: "Farm", name: str, seconds: float) -> Phase:
    cpu0 = cpu_seconds(service.worker_pids())
    answered0 = farm.stats()["answered"]
    t0 = time.perf_counter()
    n, latencies = await _orders_for(client, seconds, name)
    elapsed = time.perf_counter() - t0
    phase = Phase(name, n, elapsed, _quantile(latencies, 0.5), _quantile(latencies, 0.99),
                  cpu_seconds(service.worker_pids()) - cpu0, farm.stats()["answered"] - answered0)
    _say(f"{name}: {phase.rate:,.0f} orders/s (p50 {phase.p50_ms:.1f} ms, p99 {phase.p99_ms:.1f} ms), "
         f"worker CPU {phase.worker_cpu_s / elapsed:.0%}, {phase.delivered / elapsed:,.0f} deliveries/s")
    return phase


async def _wait_answered(farm: Farm, target: int, timeout_s: float) -> float:
    t0 = time.monotonic()
    while farm.stats()["answered"] < target:
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"deliveries stalled at {farm.stats()}")
        await asyncio.sleep(0.2)
    return time.monotonic() - t0


async def _run(service: Service, farm: Farm, sizes: Sizes) -> tuple[list[Phase], dict]:
    async with httpx.AsyncClient(base_url=service.url, timeout=60,
                                 limits=httpx.Limits(max_connections=CLIENTS + 8)) as client:
        (await client.put("/v1/skus/BENCH", json={"name": "Bench"}, headers=ADMIN)).raise_for_status()
        (await client.post("/v1/inventory/receipts", headers=ADMIN, json={
            "reference": "bench", "lines": [{"sku": "BENCH", "quantity": 10**9}]})).raise_for_status()
        phases = [await _phase(client, service, farm, "no endpoints", sizes.phase_s)]
        ten = []
        for port in farm.ports[:sizes.subscribed]:
            r = await client.post("/v1/webhook-endpoints", headers=ADMIN,
                                  json={"url": f"http://127.0.0.1:{port}/hooks", "event_types": ["order.created"]})
            r.raise_for_status()
            ten.append(r.json()["id"])
        phases.append(await _phase(client, service, farm, f"{sizes.subscribed} endpoints", sizes.phase_s))
        for mode, label in (("down", "endpoints down"), ("fail", "endpoints answer 500"),
                            ("slow", "endpoints answer after 10 s")):
            farm.mode(mode)
            phases.append(await _phase(client, service, farm, f"{sizes.subscribed} {label}", sizes.phase_s))
        farm.mode("ok")
        for eid in ten:
            (await client.patch(f"/v1/webhook-endpoints/{eid}", headers=ADMIN, json={"enabled": False})).raise_for_status()
        phases.append(await _phase(client, service, farm, "no endpoints (again)", sizes.phase_s))

        # let the 10 endpoints' backlog from the fault phases settle first
        await asyncio.sleep(1.0)
        fresh = farm.ports[sizes.subscribed:sizes.subscribed + sizes.endpoints]
        deliveries = []
        for count, orders in ((sizes.subscribed, sizes.delivery_orders * sizes.endpoints // sizes.subscribed),
                              (sizes.endpoints, sizes.delivery_orders)):
            _say(f"delivery throughput: {count} endpoints, {orders} orders at once")
            for port in fresh[len(deliveries) and sizes.subscribed:count]:
                (await client.post("/v1/webhook-endpoints", headers=ADMIN, json={
                    "url": f"http://127.0.0.1:{port}/hooks", "event_types": ["order.created"]})).raise_for_status()
            deliveries.append(await _deliver(client, service, farm, count, orders))
        return phases, deliveries


async def _deliver(client: httpx.AsyncClient, service: Service, farm: Farm, endpoints: int, orders: int) -> dict:
    """Places ``orders`` at once (32 at a time) and waits until each of the
    ``endpoints`` has answered each one's order.created."""
    before = farm.stats()["answered"]
    cpu0 = cpu_seconds(service.worker_pids())
    t0 = time.monotonic()
    body = {"channel": "wholesale", "lines": [{"sku": "BENCH", "quantity": 1}]}
    sem = asyncio.Semaphore(CLIENTS)

    async def order() -> None:
        async with sem:
            (await client.post("/v1/orders", json=body, headers=ADMIN)).raise_for_status()

    await asyncio.gather(*(order() for _ in range(orders)))
    placed_s = time.monotonic() - t0
    expected = orders * endpoints
    waited = await _wait_answered(farm, before + expected, timeout_s=900)
    total_s = placed_s + waited
    delivery = {"endpoints": endpoints, "orders": orders, "deliveries": expected, "placed_s": placed_s,
                "total_s": total_s, "rate": expected / total_s,
                "worker_cpu": (cpu_seconds(service.worker_pids()) - cpu0) / max(total_s, 1e-6)}
    _say(f"  {expected:,} deliveries in {total_s:.1f} s: {delivery['rate']:,.0f}/s")
    return delivery


def render(phases: list[Phase], deliveries: list[dict], sizes: Sizes, durability: dict) -> str:
    base = (phases[0].rate + phases[-1].rate) / 2
    lines = [
        "# Webhook benchmark (`onhand bench webhooks`)", "",
        f"1 API process, 1 worker process; {CLIENTS} concurrent clients placing one-line wholesale orders "
        f"over HTTP for {sizes.phase_s:g} s per phase; receivers in their own process on this machine. "
        f"Durability: {', '.join(f'{k} {v}' for k, v in durability.items())}.", "",
        "## The order path with and without webhook endpoints", "",
        "| phase | orders/s | vs no endpoints | p50 ms | p99 ms | worker CPU | deliveries/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in phases:
        lines.append(f"| {p.name} | {p.rate:,.0f} | {p.rate / base:.2f}x | {p.p50_ms:.1f} | {p.p99_ms:.1f} | "
                     f"{p.worker_cpu_s / p.seconds:.0%} | {p.delivered / p.seconds:,.0f} |")
    lines += ["", "\"vs no endpoints\" divides by the mean of the two phases without endpoints (first and last).",
              "", "## Delivery throughput", "",
              "| endpoints | orders at once | deliveries | orders placed in | all delivered in | deliveries/s "
              "| worker CPU |", "|---|---|---|---|---|---|---|"]
    for d in deliveries:
        lines.append(f"| {d['endpoints']} | {d['orders']:,} | {d['deliveries']:,} | {d['placed_s']:.1f} s | "
                     f"{d['total_s']:.1f} s | **{d['rate']:,.0f}** | {d['worker_cpu']:.0%} |")
    lines += ["", "Each order is one `order.created` to each endpoint; the time runs from the first order "
              "placed to the last delivery answered; worker CPU is of one core over that time.",
              f"Load average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min).", ""]
    return "\n".join(lines)


def main(settings: Settings, *, out: str = "bench-report", quick: bool = False) -> int:
    sizes = QUICK if quick else FULL
    workdir = scratch_dir()
    print(f"webhook benchmark in {workdir}", file=sys.stderr)
    try:
        with servers(settings, workdir) as found:
            service = Service("onhand", found, workdir, merchant="bench", extra_env={
                "ONHAND_WEBHOOKS_ALLOW_PRIVATE": "1", "ONHAND_WEBHOOK_TIMEOUT_MS": "2000",
                "ONHAND_WEBHOOK_RETRY_BASE_MS": "1000", "ONHAND_WEBHOOK_RETRY_CAP_MS": "5000",
                "ONHAND_RATE_LIMIT_WHOLESALE": "0"})
            farm = Farm(workdir, sizes.subscribed + sizes.endpoints)
            service.start()
            try:
                phases, deliveries = asyncio.run(_run(service, farm, sizes))
            finally:
                service.stop()
                farm.stop()
            report = render(phases, deliveries, sizes, found.durability)
    finally:
        remove(workdir)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "webhooks.md").write_text(report)
    print(report)
    return 0
