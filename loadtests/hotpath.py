"""The order path against the cost of its own stack (issue 14).

The yardstick (loadtests/yardstick.py) is the bare stack an order stands on:
Litestar + msgspec decoding a one-line order, one EVALSHA of a
check-and-decrement that appends to a stream, on its own Valkey with AOF
`appendfsync always`. onhand runs `onhand serve` with one API process (no
worker process during the runs: the yardstick has none either; its outbox
just grows), on its own Valkey with the same durability. Both under the same
wrk load (64 connections, one thread), alternating, RUNS runs each, medians.

onhand's request is the expensive realistic one: `POST /v1/orders` with a
wholesale key (rate-limited, at a rate high enough never to refuse), its own
Idempotency-Key, the key's customer (its profile gives the order's defaults),
one line of one hot SKU. Also measured: the same with the admin key (DTC),
the CPU per order of each API process, the Redis commands per request
(INFO commandstats deltas), the API process's memory, and a py-spy profile
(top entries and a flame graph SVG).

    onhand bench hotpath [--out DIR] [--runs 3] [--seconds 10] [--quick]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import psutil
from redis import Redis

from loadtests.measure import WrkResult, analyse, redis_commandstats, wrk
from loadtests.stack import (ADMIN_KEY, Service, _child_setup, cpu_seconds, free_port, remove, rss_bytes,
                             scratch_dir, servers)
from onhand.embedded import start_valkey
from onhand.settings import Settings

WRK_POST = Path(__file__).with_name("wrk") / "post.lua"
CONNECTIONS = 64
ROOT = Path(__file__).resolve().parents[1]


def _say(text: str) -> None:
    print(f"[hotpath {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass
class Run:
    name: str
    wrk: WrkResult
    api_cpu_s: float
    redis_calls: int
    script_calls: int
    api_rss_mb: float
    #: CPU of the API process's busiest thread (its event loop), seconds
    loop_cpu_s: float = 0.0
    #: CPU of the Redis server, seconds
    redis_cpu_s: float = 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.api_cpu_s / max(1, self.wrk.requests)

    def us(self, seconds: float) -> float:
        """CPU seconds of the run as microseconds per request."""
        return 1e6 * seconds / max(1, self.wrk.requests)

    @property
    def calls_per_request(self) -> float:
        return self.redis_calls / max(1, self.wrk.requests)


@dataclass
class Report:
    runs: list[Run] = field(default_factory=list)
    profile_top: list[tuple[str, float]] = field(default_factory=list)
    profile_layers: list[tuple[str, float]] = field(default_factory=list)
    #: the yardstick's profile, taken the same way
    yard_top: list[tuple[str, float]] = field(default_factory=list)
    yard_layers: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the Shopify webhook intake (loadtests/intake.py)
    intake: object = None
    #: the hot SKU against the PostgreSQL baseline (loadtests/hotsku.py)
    hot: object = None
    #: request -> {command: per request}, counted with MONITOR
    trips: dict[str, dict[str, float]] = field(default_factory=dict)

    def of(self, name: str) -> list[Run]:
        return [r for r in self.runs if r.name == name]

    def median(self, name: str, attr) -> float:
        values = [attr(r) for r in self.of(name)]
        return statistics.median(values) if values else float("nan")


class Yardstick:
    """granian serving loadtests.yardstick with onhand's API settings."""

    def __init__(self, redis_url: str, workdir: Path):
        self.redis_url, self.workdir = redis_url, workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "YARDSTICK_REDIS_URL": self.redis_url, "PYTHONPATH": str(ROOT)}
        with open(self.workdir / "yardstick.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", "1", "--loop", "uvloop", "--log-level", "warning",
                 "loadtests.yardstick:create_yardstick_app"],
                env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT,
                preexec_fn=_child_setup(os.getpid(), None, None, 15))  # noqa: PLW1509
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.post(self.url + "/v1/orders", json={"channel": "dtc", "lines": [{"sku": "WARM", "quantity": 1}]},
                           timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the yardstick did not start")

    def pids(self) -> list[int]:
        if not self.process:
            return []
        p = psutil.Process(self.process.pid)
        return [p.pid, *(c.pid for c in p.children(recursive=True))]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)


def _wrk_post(url: str, key: str | None, body: bytes, idem: bool, seconds: int, workdir: Path) -> WrkResult:
    return wrk(["-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(WRK_POST), url,
                "--", key or "-", "/v1/orders", body.decode(), "idem" if idem else "-"], workdir)


def _threads_cpu(pids: list[int]) -> dict[tuple[int, int], float]:
    out = {}
    for pid in pids:
        try:
            for t in psutil.Process(pid).threads():
                out[(pid, t.id)] = t.user_time + t.system_time
        except psutil.Error:
            pass
    return out


def _measured(name: str, pids, redis: Redis, run, redis_pid: int | None = None) -> Run:
    redis_cpu = (lambda: cpu_seconds([redis_pid])) if redis_pid else (lambda: 0.0)
    threads0, r0 = _threads_cpu(pids()), redis_cpu()
    before, stats0 = cpu_seconds(pids()), redis_commandstats(redis)
    result = run()
    after, stats1 = cpu_seconds(pids()), redis_commandstats(redis)
    threads1, r1 = _threads_cpu(pids()), redis_cpu()
    loop = max((threads1[k] - threads0.get(k, 0.0) for k in threads1), default=0.0)
    calls = sum(int(v.get("calls", 0)) for v in stats1.values()) - sum(int(v.get("calls", 0)) for v in stats0.values())
    scripts = sum(int(stats1.get(c, {}).get("calls", 0)) - int(stats0.get(c, {}).get("calls", 0))
                  for c in ("evalsha", "eval", "fcall", "fcall_ro"))
    rss = rss_bytes(pids()) / 1024**2
    return Run(name, result, after - before, calls, scripts, rss, loop, r1 - r0)


def round_trips(url: str, redis_url: str, key: str | None, body: bytes, idem: bool, n: int = 200) -> dict[str, float]:
    """Commands the API sends Redis per request, counted with MONITOR (which
    marks the commands a script runs: those are not round trips), over ``n``
    requests sent one after another; per command name."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}

    def send(http: httpx.Client, i: int) -> None:
        h = {**headers, "Idempotency-Key": f"rt-{uuid.uuid4().hex}"} if idem else headers
        assert http.post("/v1/orders", content=body, headers=h).status_code == 201

    return monitored(url, redis_url, send, n)


def monitored(url: str, redis_url: str, send, n: int) -> dict[str, float]:
    """Runs ``send(http, i)`` for i in 0..n (after one warm-up call, i = -1)
    and counts the commands clients send Redis meanwhile (MONITOR; the
    commands a script runs are marked and left out), per request."""
    import threading
    from collections import Counter

    seen: Counter = Counter()
    ready, done = threading.Event(), threading.Event()

    def watch() -> None:
        with Redis.from_url(redis_url).monitor() as m:
            ready.set()
            for event in m.listen():
                if done.is_set():
                    return
                if event.get("client_type") == "lua" or "lua" in str(event.get("client_address", "")):
                    continue
                seen[event["command"].split()[0].strip('"').upper()] += 1

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    ready.wait(5)
    with httpx.Client(base_url=url, timeout=10) as http:
        send(http, -1)  # caches warm
        time.sleep(0.2)
        seen.clear()
        for i in range(n):
            send(http, i)
        time.sleep(0.3)
    done.set()
    Redis.from_url(redis_url).ping()  # wakes the monitor so it can end
    t.join(5)
    return {k: v / n for k, v in seen.most_common()}


def _setup_onhand(service: Service) -> str:
    """A hot SKU with a billion units, a wholesale customer and its key."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=service.url, headers=admin, timeout=30) as http:
        assert http.put("/v1/skus/HOT", json={"name": "hot"}).status_code == 200
        r = http.post("/v1/inventory/receipts", json={"reference": "hot-1",
                                                      "lines": [{"sku": "HOT", "quantity": 1_000_000_000}]})
        assert r.status_code == 201, r.text
        customer = http.post("/v1/customers", json={"name": "Bench Retail", "profiles": [
            {"channel": "wholesale", "payment_terms": "net_30", "backorder_policy": "backorder"}]}).json()
        key = http.post("/v1/api-keys", json={"role": "wholesale", "customer_id": customer["id"]}).json()["key"]
    return key


def _profile(pid: int, seconds: int, out: Path, load) -> tuple[list, list]:
    """py-spy on the API process under ``load``: a flame graph (SVG) and the top entries."""
    import shutil
    import threading

    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        return [], [("py-spy is not installed", 0.0)]
    raw = out.with_suffix(".txt")
    results = {}

    def record(fmt: str, path: Path) -> None:
        results[fmt] = subprocess.run([spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "100",
                                       "--nonblocking", "-f", fmt, "-o", str(path)], capture_output=True,
                                      text=True, check=False)

    for fmt, path in (("raw", raw), ("flamegraph", out)):
        t = threading.Thread(target=record, args=(fmt, path))
        t.start()
        load()
        t.join()
    if not raw.exists():
        return [], [(f"py-spy failed: {results.get('raw') and results['raw'].stderr[-200:]}", 0.0)]
    prof = analyse(raw, seconds * 100)
    return prof.top_self, prof.layers


def main(settings: Settings, *, out: str, runs: int = 3, seconds: int = 10, quick: bool = False) -> int:
    if quick:
        runs, seconds = 1, 3
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = scratch_dir()
    report = Report()
    load = os.getloadavg()[0]
    report.notes.append(f"load average {load:.2f} at the start; {os.cpu_count()} CPUs")
    yard_valkey = start_valkey(workdir / "yardstick-valkey", appendfsync="always")
    try:
        # onhand on its own Valkey with AOF always too (not a given test Redis)
        with servers(msgspec.structs.replace(settings, redis_url=None), workdir) as found:
            _say(f"servers: {found.durability}")
            yard = Yardstick(yard_valkey.url, workdir)
            yard.start()
            yard_redis = Redis.from_url(yard_valkey.url)
            yard_redis.set("{y}:stock:HOT", 10**15)
            merchant = "hot" + uuid.uuid4().hex[:6]
            service = Service("onhand", found, workdir, merchant=merchant, worker_processes=0,
                              extra_env={"ONHAND_RATE_LIMIT_WHOLESALE": "1000000"})
            service.start()
            redis = Redis.from_url(found.redis_url)
            try:
                key = _setup_onhand(service)
                wholesale = b'{"channel":"wholesale","lines":[{"sku":"HOT","quantity":1}]}'
                dtc = b'{"channel":"dtc","lines":[{"sku":"HOT","quantity":1}]}'
                warm = max(2, seconds // 3)
                _wrk_post(yard.url, None, dtc, False, warm, workdir)
                _wrk_post(service.url, key, wholesale, True, warm, workdir)
                onhand_redis_pid = found.pids("valkey")[0]
                for i in range(runs):
                    _say(f"run {i + 1}/{runs}: yardstick")
                    report.runs.append(_measured("yardstick", yard.pids, yard_redis,
                                                 lambda: _wrk_post(yard.url, None, dtc, False, seconds, workdir),
                                                 yard_valkey.pid))
                    _say(f"run {i + 1}/{runs}: onhand, wholesale key, Idempotency-Key")
                    report.runs.append(_measured("onhand wholesale", service.api_pids, redis,
                                                 lambda: _wrk_post(service.url, key, wholesale, True, seconds,
                                                                   workdir), onhand_redis_pid))
                    _say(f"run {i + 1}/{runs}: onhand, admin key, DTC, no Idempotency-Key")
                    report.runs.append(_measured("onhand dtc", service.api_pids, redis,
                                                 lambda: _wrk_post(service.url, ADMIN_KEY, dtc, False, seconds,
                                                                   workdir), onhand_redis_pid))
                _say("round trips per request (MONITOR)")
                report.trips["onhand wholesale"] = round_trips(service.url, found.redis_url, key, wholesale, True)
                report.trips["onhand dtc"] = round_trips(service.url, found.redis_url, ADMIN_KEY, dtc, False)
                _say("profile (py-spy) of the API process under the wholesale load")
                report.profile_top, report.profile_layers = _profile(
                    service.api_worker_pids()[0], seconds, out_dir / "hotpath-flamegraph.svg",
                    lambda: _wrk_post(service.url, key, wholesale, True, seconds + 1, workdir))
                _say("profile (py-spy) of the yardstick under its load")
                report.yard_top, report.yard_layers = _profile(
                    yard.pids()[-1], seconds, out_dir / "yardstick-flamegraph.svg",
                    lambda: _wrk_post(yard.url, None, dtc, False, seconds + 1, workdir))
                from loadtests import intake

                report.intake = intake.measure(service, redis, found.redis_url, workdir, seconds, _say)
                from loadtests import hotsku

                report.hot = hotsku.measure(service, found, workdir, runs, seconds, _say)
            finally:
                redis.close()
                yard_redis.close()
                service.stop()
                yard.stop()
    finally:
        yard_valkey.stop()
        remove(workdir)
    path = out_dir / "hotpath.md"
    path.write_text(render(report, runs, seconds))
    _say(f"report written to {path}")
    print(summary(report))
    bad = [r for r in report.runs if set(r.wrk.statuses) != {"201"}]
    for r in bad:
        print(f"{r.name}: answers other than 201: {r.wrk.statuses} {r.wrk.errors}", file=sys.stderr)
    if report.intake is not None:
        i = report.intake
        print(f"webhook intake: {i.max_run.rps:,.0f} deliveries/s max; at {i.paced_run.rps:,.0f}/s p99 "
              f"{i.paced_run.latency_ms.get('p99', 0):.1f} ms; {sum(i.trips.values()):.2f} round trips; "
              + ("checks passed" if not i.checks else "CHECKS FAILED: " + "; ".join(i.checks)))
        if i.checks:
            return 1
    if report.hot is not None:
        h = report.hot
        print(f"hot SKU: onhand {h.median('onhand'):,.0f}/s, baseline {h.median('baseline'):,.0f}/s; "
              + ("checks passed" if not h.checks else "CHECKS FAILED: " + "; ".join(h.checks)))
        if h.checks:
            return 1
    return 1 if bad else 0


def summary(report: Report) -> str:
    y = report.median("yardstick", lambda r: r.wrk.rps)
    lines = [f"yardstick {y:,.0f} req/s"]
    for name in ("onhand wholesale", "onhand dtc"):
        rps = report.median(name, lambda r: r.wrk.rps)
        lines.append(f"{name}: {rps:,.0f} req/s = {rps / y:.2f} of the yardstick; "
                     f"{report.median(name, lambda r: r.cpu_us_per_request):.0f} us API CPU per order, "
                     f"{sum(report.trips.get(name, {}).values()):.2f} Redis round trips per order")
    return "\n".join(lines)


def render(report: Report, runs: int, seconds: int) -> str:
    y = report.median("yardstick", lambda r: r.wrk.rps)
    out = ["# The order path against its own stack", "",
           f"{runs} runs of {seconds} s each, alternating, wrk -t1 -c{CONNECTIONS}; medians. "
           + "; ".join(report.notes) + ".", "",
           "| request | req/s | vs yardstick | p50 / p99 ms | API CPU per request | Redis commands per request "
           "(with those scripts run) | script calls per request | API RSS |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in ("yardstick", "onhand wholesale", "onhand dtc"):
        rs = report.of(name)
        if not rs:
            continue
        rps = report.median(name, lambda r: r.wrk.rps)
        p50 = report.median(name, lambda r: r.wrk.latency_ms.get("p50", float("nan")))
        p99 = report.median(name, lambda r: r.wrk.latency_ms.get("p99", float("nan")))
        out.append(f"| {name} | {rps:,.0f} | {rps / y:.2f} | {p50:.1f} / {p99:.1f} | "
                   f"{report.median(name, lambda r: r.cpu_us_per_request):.0f} us | "
                   f"{report.median(name, lambda r: r.calls_per_request):.2f} | "
                   f"{statistics.median(r.script_calls / max(1, r.wrk.requests) for r in rs):.2f} | "
                   f"{report.median(name, lambda r: r.api_rss_mb):.0f} MB |")
    out += ["", "Redis round trips per request (MONITOR over 200 requests one after another; commands a "
            "script runs are not round trips): "
            + "; ".join(f"{name}: {sum(t.values()):.2f} ({', '.join(f'{c} {n:.2f}' for c, n in t.items())})"
                        for name, t in report.trips.items()) + "."]
    out += ["", "Every run: " + ", ".join(f"{r.name} {r.wrk.rps:,.0f}/s" for r in report.runs) + ".", "",
            "## Where each request's CPU goes (medians, microseconds per request)", "",
            "The API process's event loop runs the Python side of a request; its other threads are granian's "
            "HTTP I/O (Rust). Redis is the whole server process (the script, the AOF writes and fsyncs, its "
            "sockets). wrk is the load generator, on the same two cores.", "",
            "| request | API event loop | API other threads | Redis | wrk | all |", "|---|---:|---:|---:|---:|---:|"]
    for name in ("yardstick", "onhand wholesale", "onhand dtc"):
        if not report.of(name):
            continue
        loop = report.median(name, lambda r: r.us(r.loop_cpu_s))
        other = report.median(name, lambda r: r.us(r.api_cpu_s - r.loop_cpu_s))
        rcpu = report.median(name, lambda r: r.us(r.redis_cpu_s))
        wcpu = report.median(name, lambda r: r.us(r.wrk.cpu_s))
        out.append(f"| {name} | {loop:.0f} | {other:.0f} | {rcpu:.0f} | {wcpu:.0f} | {loop + other + rcpu + wcpu:.0f} |")
    out += ["", "## Where the API process's time goes (py-spy)", "",
            "Each layer's share of the event loop's samples, and that share of the loop's CPU per request "
            "(median of the runs above): onhand under the wholesale load, the yardstick under its own.", "",
            "| layer | yardstick | onhand wholesale |", "|---|---:|---:|"]
    y_loop = report.median("yardstick", lambda r: r.us(r.loop_cpu_s))
    o_loop = report.median("onhand wholesale", lambda r: r.us(r.loop_cpu_s))
    yard, mine = dict(report.yard_layers), dict(report.profile_layers)
    for k in sorted(set(yard) | set(mine), key=lambda k: -(mine.get(k, 0) * o_loop + yard.get(k, 0) * y_loop)):
        out.append(f"| {k} | {yard.get(k, 0):.1f}% = {yard.get(k, 0) * y_loop / 100:.0f} us | "
                   f"{mine.get(k, 0):.1f}% = {mine.get(k, 0) * o_loop / 100:.0f} us |")
    for title, top in (("onhand wholesale", report.profile_top), ("yardstick", report.yard_top)):
        out += ["", f"{title}, by function (self time):", "", "| function | share |", "|---|---:|"]
        out += [f"| `{f}` | {v:.1f}% |" for f, v in top[:15]]
    out += ["", "Flame graphs: [onhand](hotpath-flamegraph.svg), [yardstick](yardstick-flamegraph.svg).", ""]
    if report.intake is not None:
        from loadtests import intake

        out += intake.render(report.intake)
    if report.hot is not None:
        from loadtests import hotsku

        out += hotsku.render(report.hot, runs, seconds)
    return "\n".join(out)
