"""The Shopify webhook intake at its maximum (issue 14), paced by wrk.

Deliveries of orders/create (one line of one SKU, each its own Shopify order,
webhook id and event id) are signed beforehand and written to a file that
wrk replays (loadtests/wrk/replay.lua): the emulator, a Python client, sends
only ~300 deliveries a second and would set the pace. Measured: the maximum
(closed loop, 64 connections), then the latency at 80% of it (64 connections,
each pausing between its requests: short trials find the pause that gives 80%), then a replay of deliveries already
taken (duplicates). Checked: every delivery answered 200, and each Shopify
order reserved once (orders in Redis = distinct deliveries taken = units
reserved), the duplicates changing nothing. Also: API CPU per delivery, the
Redis round trips per delivery (MONITOR) and the API's memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
from redis import Redis

from loadtests.measure import WrkResult, redis_commandstats, wrk
from loadtests.stack import ADMIN_KEY, SHOPIFY_SECRET, SHOPIFY_SHOP, Service, cpu_seconds, rss_bytes

WRK_REPLAY = Path(__file__).with_name("wrk") / "replay.lua"
SKU = "HOOK"
#: The most deliveries a second a closed-loop run is expected to reach (its file's length per second).
MAX_RATE = 15_000


@dataclass
class IntakeReport:
    max_run: WrkResult | None = None
    paced_run: WrkResult | None = None
    dup_run: WrkResult | None = None
    paced_target: float = 0.0
    cpu_us_per_delivery: float = 0.0
    trips: dict[str, float] = field(default_factory=dict)
    #: commands sent (not run by a script) per delivery at the maximum (INFO commandstats)
    commands: dict[str, float] = field(default_factory=dict)
    rss_mb: float = 0.0
    orders: int = 0
    reserved: int = 0
    taken: int = 0
    checks: list[str] = field(default_factory=list)


def signed_deliveries(n: int, start_id: int) -> list[tuple[dict[str, str], bytes]]:
    out = []
    for i in range(n):
        oid = start_id + i
        body = msgspec.json.encode({
            "id": oid, "name": f"#B{oid}", "currency": "USD", "created_at": "2026-12-03T10:00:00Z",
            "line_items": [{"id": oid * 10, "quantity": 1, "sku": SKU, "price": "10.00"}]})
        digest = base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()).decode()
        out.append(({"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": digest,
                     "X-Shopify-Shop-Domain": SHOPIFY_SHOP, "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                     "X-Shopify-Event-Id": str(uuid.uuid4()), "X-Shopify-API-Version": "2026-01"}, body))
    return out


def _write(path: Path, deliveries) -> None:
    with open(path, "w") as f:
        for headers, body in deliveries:
            f.write("|".join(f"{k}={v}" for k, v in headers.items()) + "\t" + body.decode() + "\n")


def _run(url: str, path: Path, first: int, connections: int, seconds: int, delay_ms: int,
         workdir: Path) -> WrkResult:
    return wrk(["-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(WRK_REPLAY), url,
                "--", "/webhooks/shopify", str(path), str(first), str(delay_ms)], workdir)


def measure(service: Service, redis: Redis, redis_url: str, workdir: Path, seconds: int,
            say) -> IntakeReport:
    from loadtests.hotpath import monitored

    report = IntakeReport()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=service.url, headers=admin, timeout=30) as http:
        assert http.put(f"/v1/skus/{SKU}", json={"name": "hook"}).status_code == 200
        r = http.post("/v1/inventory/receipts", json={"reference": "hook-1",
                                                      "lines": [{"sku": SKU, "quantity": 1_000_000_000}]})
        assert r.status_code == 201, r.text
    # each run replays a file of its own, long enough that it never wraps
    # round (a wrapped file sends duplicates): written before the run, for
    # at most MAX_RATE a second (the paced run: its asked rate, with room)
    next_id = 7_000_000_000
    taken = 0
    #: every run's answers: (name, result)
    runs: list[tuple[str, WrkResult]] = []

    def phase(name: str, n: int, connections: int, run_seconds: int, delay_ms: int) -> tuple[WrkResult, list]:
        nonlocal next_id, taken
        deliveries = signed_deliveries(n, next_id)
        next_id += n
        path = workdir / f"deliveries-{name}.txt"
        _write(path, deliveries)
        result = _run(service.url, path, 1, connections, run_seconds, delay_ms, workdir)
        if result.requests + connections >= n:
            report.checks.append(f"{name}: the deliveries file ran out ({n:,} lines, {result.requests:,} answered)")
        taken += min(n, result.requests + connections)
        runs.append((name, result))
        return result, deliveries

    # the merchant has the hot path's orders too: count this SKU's from here
    base = _orders(redis, service)
    say("intake: warm-up")
    warm, warm_deliveries = phase("warm", 2 * MAX_RATE, 16, 2, 0)
    say("intake: maximum (64 connections, closed loop)")
    pids = service.api_pids
    cpu0, stats0 = cpu_seconds(pids()), redis_commandstats(redis)
    report.max_run, _ = phase("max", seconds * MAX_RATE, 64, seconds, 0)
    cpu1, stats1 = cpu_seconds(pids()), redis_commandstats(redis)
    report.commands = {c.upper(): (int(stats1.get(c, {}).get("calls", 0)) - int(stats0.get(c, {}).get("calls", 0)))
                       / max(1, report.max_run.requests) for c in ("fcall", "zadd")}
    report.cpu_us_per_delivery = 1e6 * (cpu1 - cpu0) / max(1, report.max_run.requests)
    report.rss_mb = rss_bytes(pids()) / 1024**2
    report.paced_target = target = 0.8 * report.max_run.rps
    # wrk paces with a pause after each answer, per connection: a connection
    # sends 1 / (pause + answer time) a second. The answer time at 80% load is
    # not known beforehand, so short trials find the pause that gives 80%
    connections = 64
    answer_ms = max(1.0, report.max_run.latency_ms.get("p50", 5.0) / 5)
    delay = max(0, round(connections * 1000 / target - answer_ms))
    best = None
    for trial in range(3):
        say(f"intake: pacing trial {trial + 1} ({connections} connections, {delay} ms pause)")
        run, _ = phase(f"trial{trial}", int(2 * target * 1.5) + 1000, connections, 2, delay)
        if best is None or abs(run.rps - target) < abs(best[1] - target):
            best = (delay, run.rps)
        if abs(run.rps - target) <= 0.05 * target:
            break
        answer_ms = max(0.0, connections * 1000 / max(1.0, run.rps) - delay)
        delay = max(0, round(connections * 1000 / target - answer_ms))
    delay = best[0]
    say(f"intake: paced at 80% ({target:,.0f}/s asked: {connections} connections, {delay} ms pause)")
    report.paced_run, _ = phase("paced", int(seconds * target * 1.5) + 1000, connections, seconds, delay)
    # requests wrk left in flight finish first (on a loaded machine, seconds)
    before = _orders(redis, service)
    for _ in range(30):
        time.sleep(1)
        now = _orders(redis, service)
        if now == before:
            break
        before = now
    say("intake: duplicates (the first deliveries again)")
    # only deliveries certainly taken: the warm-up's first, answered ones. Not
    # its very first line: wrk asks a script's request() once per thread before
    # it connects and never sends that request (seen with a logging server:
    # the first line of a replay never arrives)
    dup_path = workdir / "duplicates.txt"
    _write(dup_path, warm_deliveries[1:max(2, warm.requests - 32)])
    report.dup_run = _run(service.url, dup_path, 1, 16, 2, 0, workdir)
    after = _orders(redis, service)
    before, after = before - base, after - base
    report.orders = after
    report.reserved = int(redis.hget(f"{service.keys.prefix}:s:{SKU}", "rd") or 0)
    report.taken = taken
    for name, run in [*runs, ("duplicates", report.dup_run)]:
        if set(run.statuses) != {"200"}:
            report.checks.append(f"{name}: answers other than 200: {run.statuses} {run.errors}")
    if after != before:
        report.checks.append(f"duplicates made orders: {before} -> {after}")
    if report.reserved != report.orders:
        report.checks.append(f"units reserved {report.reserved} != orders {report.orders}")
    completed = sum(run.requests for _, run in runs)
    if not completed <= report.orders <= taken:
        report.checks.append(f"orders {report.orders} outside [{completed}, {taken}] (answered, sent)")

    extra = iter(signed_deliveries(201, 8_000_000_000))

    def send(http: httpx.Client, _: int) -> None:
        headers, body = next(extra)
        assert http.post("/webhooks/shopify", content=body,
                         headers={**headers, "Content-Type": "application/json"}).status_code == 200

    say("intake: round trips per delivery (MONITOR)")
    report.trips = monitored(service.url, redis_url, send, 200)
    return report


def _orders(redis: Redis, service: Service) -> int:
    # a set: SCAN may return a key more than once (while Redis rehashes the
    # keyspace, which it does incrementally after a burst of new keys)
    return len(set(redis.scan_iter(match=f"{service.keys.prefix}:o:*", count=5000)))


def render(report: IntakeReport) -> list[str]:
    m, p, d = report.max_run, report.paced_run, report.dup_run
    out = ["## Shopify webhook intake (pre-signed orders/create replayed by wrk)", "",
           "| run | deliveries/s | p50 / p99 ms | answers |", "|---|---:|---:|---|"]
    for name, r in (("maximum, 64 connections", m), (f"paced at 80% ({report.paced_target:,.0f}/s asked), "
                                                      "64 connections", p),
                    ("duplicates of taken deliveries, 16 connections", d)):
        out.append(f"| {name} | {r.rps:,.0f} | {r.latency_ms.get('p50', 0):.1f} / "
                   f"{r.latency_ms.get('p99', 0):.1f} | {' '.join(f'{k}: {v}' for k, v in r.statuses.items())} |")
    out += ["", f"API CPU per delivery at the maximum: {report.cpu_us_per_delivery:.0f} us; API RSS "
            f"{report.rss_mb:.0f} MB; Redis round trips per delivery (MONITOR, 200 one after another): "
            f"{sum(report.trips.values()):.2f} ("
            + ", ".join(f"{c} {v:.2f}" for c, v in report.trips.items()) + "); at the maximum "
            + ", ".join(f"{c} {v:.2f}" for c, v in report.commands.items()) + " per delivery (INFO commandstats, which counts "
            "a script's commands too: two ZADDs run inside the FCALL, the reservation's and the sale's hold; "
            "the rest release held-back sales after the 200, one pipeline per turn of the event loop for the "
            "deliveries answered in it: one delivery at a time, as MONITOR sends them, each has a pipeline of two).",
            f"Orders in Redis {report.orders:,}, units reserved {report.reserved:,} (each order once); "
            f"deliveries sent at most {report.taken:,}; the duplicates made no order. "
            + ("Checks: all passed." if not report.checks else "CHECKS FAILED: " + "; ".join(report.checks)), ""]
    return out
