"""Hot SKU maximum: onhand against the PostgreSQL row-lock baseline behind the
same front (the same API, the baseline's store_factory), in one session
(issue 14). One-unit DTC orders with the admin key on one SKU, wrk closed
loop (loadtests/wrk/orders.lua, as `onhand bench load`), one API process
each, alternating, ``runs`` runs each, medians. Checked after the runs: every
answer 201, and on both no oversell and no reservation lost or doubled
(reserved units between the 201s counted and those plus the requests still in
flight when wrk stopped; available = received - reserved >= 0).
"""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from loadtests.measure import WrkResult, run_wrk
from loadtests.stack import ADMIN_KEY, Service, cpu_seconds

STOCK = 100_000_000
CONNECTIONS = 64


@dataclass
class HotReport:
    runs: dict[str, list[WrkResult]] = field(default_factory=lambda: {"onhand": [], "baseline": []})
    cpu_us: dict[str, list[float]] = field(default_factory=lambda: {"onhand": [], "baseline": []})
    stock: dict[str, dict] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    def median(self, engine: str) -> float:
        return statistics.median(r.rps for r in self.runs[engine]) if self.runs[engine] else 0.0


def _stock(service: Service, sku: str) -> None:
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as http:
        assert http.put(f"/v1/skus/{sku}", json={"name": sku}).status_code == 200
        r = http.post("/v1/inventory/receipts", json={"reference": f"{sku}-in",
                                                      "lines": [{"sku": sku, "quantity": STOCK}]})
        assert r.status_code == 201, r.text


def _inventory(service: Service, sku: str) -> dict:
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as http:
        return http.get(f"/v1/inventory/{sku}").json()


def measure(onhand: Service, found, workdir: Path, runs: int, seconds: int, say) -> HotReport:
    report = HotReport()
    baseline = Service("baseline", found, workdir, merchant="hotbl" + uuid.uuid4().hex[:6], worker_processes=0)
    baseline.start()
    try:
        services = {"onhand": onhand, "baseline": baseline}
        skus = {engine: f"HOTSKU-{engine}-{uuid.uuid4().hex[:6]}" for engine in services}
        for engine, service in services.items():
            _stock(service, skus[engine])
            run_wrk(service.url, skus[engine], 1, 2, workdir, CONNECTIONS)  # warm
        for i in range(runs):
            for engine, service in services.items():
                say(f"hot SKU run {i + 1}/{runs}: {engine}")
                c0 = cpu_seconds(service.api_pids())
                result = run_wrk(service.url, skus[engine], 1, seconds, workdir, CONNECTIONS)
                c1 = cpu_seconds(service.api_pids())
                report.runs[engine].append(result)
                report.cpu_us[engine].append(1e6 * (c1 - c0) / max(1, result.requests))
                if set(result.statuses) != {"201"}:
                    report.checks.append(f"{engine}: answers other than 201: {result.statuses} {result.errors}")
        import time

        time.sleep(1)
        for engine, service in services.items():
            inv = _inventory(service, skus[engine])
            report.stock[engine] = inv
            # the warm-up's and the runs' 201s (warm-up: counted as requests, all 201)
            answered = sum(r.statuses.get("201", 0) for r in report.runs[engine])
            reserved = inv["reserved"]
            if inv["available"] < 0 or inv["available"] != inv["on_hand"] - reserved or inv["on_hand"] != STOCK:
                report.checks.append(f"{engine}: oversold or inconsistent: {inv}")
            if reserved < answered:
                report.checks.append(f"{engine}: {answered} orders answered 201 but {reserved} units reserved")
            inv["answered_201_in_runs"] = answered
    finally:
        baseline.stop()
    return report


def render(report: HotReport, runs: int, seconds: int) -> list[str]:
    a, b = report.median("onhand"), report.median("baseline")
    out = ["## Hot SKU: onhand against the PostgreSQL row-lock baseline, same front", "",
           f"One-unit DTC orders (admin key) on one SKU, wrk -t1 -c{CONNECTIONS}, {runs} runs of {seconds} s "
           "each, alternating, medians; one API process each.", "",
           "| engine | orders/s (median) | every run | p50 / p99 ms (median) | API CPU per order | "
           "reserved / available after |", "|---|---:|---|---:|---:|---|"]
    for engine in ("onhand", "baseline"):
        rs = report.runs[engine]
        if not rs:
            continue
        inv = report.stock.get(engine, {})
        out.append(f"| {engine} | {report.median(engine):,.0f} | {', '.join(f'{r.rps:,.0f}' for r in rs)} | "
                   f"{statistics.median(r.latency_ms.get('p50', 0) for r in rs):.1f} / "
                   f"{statistics.median(r.latency_ms.get('p99', 0) for r in rs):.1f} | "
                   f"{statistics.median(report.cpu_us[engine]):.0f} us | "
                   f"{inv.get('reserved', '?'):,} / {inv.get('available', '?'):,} |")
    out += ["", f"onhand / baseline: {a / b:.2f}x." if b else "",
            "Checks (no oversell, no reservation lost, every answer 201): "
            + ("all passed." if not report.checks else "FAILED: " + "; ".join(report.checks)), ""]
    return out
