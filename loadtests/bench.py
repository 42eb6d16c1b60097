"""`onhand bench load`: onhand and the PostgreSQL row-lock baseline side by
side, in one run, on one machine; writes report.md and PNG charts to a folder.

What it does, in order (both engines at each step, one after the other):
1. starts what it needs: embedded Valkey (AOF, appendfsync always) and
   PostgreSQL (fsync, synchronous_commit on), or the servers given by
   ONHAND_REDIS_URL / ONHAND_DATABASE_URL (two fresh databases there); the
   Shopify emulator; one `onhand serve` per engine (1 API process; onhand
   with its outbox worker, the baseline with none: it writes PostgreSQL
   synchronously);
2. the Locust scenarios (flash sale, Shopify webhook burst, wholesale mix,
   read mix), each followed by the invariant checks;
3. (full run) wrk at maximum throughput on a hot SKU and on spread SKUs,
   with CPU per process group, PostgreSQL wait events and Redis CPU per call;
   the open-loop generator at 50% and 80% of each engine's own maximum; a
   py-spy profile of the API process at maximum; and wrk again with two API
   processes;
4. the report, and a summary on stdout.

``quick`` is the CI smoke: small sizes, Locust scenarios and invariants
only, under two minutes; it fails (exit 1) on any invariant breach, failed
response check or 5xx, never on speed.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import shutil
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg
from redis import Redis

from loadtests import invariants, libpq, measure, report, scenarios
from loadtests.measure import SPREAD_SKUS, CpuWindow, PgWaits
from loadtests.report import MaxRate, OpenLoop, Run
from loadtests.scenarios import FULL, QUICK, Outcome, Setup, Sizes, new_skus
from loadtests.stack import (
    Sampler,
    Service,
    forget_merchant,
    unsafe_redis_env,
    scratch_dir,
    servers,
    wait_drained,
)
from loadtests.webhooks import Emulator, webhook_burst
from onhand.settings import Settings

#: Seconds of each wrk run at maximum throughput.
WRK_S = 15
#: Seconds of schedule of each open-loop run (the first 2 s are warm-up).
OPENLOOP_S = 22
#: Seconds py-spy samples the API process.
PROFILE_S = 10
#: Stock per spread SKU and on the hot SKU for the wrk runs.
SPREAD_STOCK = 1_000_000
HOT_STOCK = 100_000_000


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gb": psutil.virtual_memory().total / 1024**3,
            "python": platform.python_version(), "load_before": _load()}


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


class Bench:
    def __init__(self, settings: Settings, out: Path, quick: bool):
        self.settings = settings
        self.out = out
        self.quick = quick
        self.sizes: Sizes = QUICK if quick else FULL
        argv = " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("onhand") else "bench load"
        self.run = Run(command=f"onhand {argv}", quick=quick)
        self.services: dict[str, Service] = {}
        self.loads: list[float] = []

    # ------------------------------------------------------------ plumbing

    @contextmanager
    def phase(self, name: str, engine: str):
        self.loads.append(os.getloadavg()[0])
        _say(f"{name} on {engine} ...")
        start = time.time()
        try:
            yield
        finally:
            self.run.phases.append((name, engine, start, time.time()))

    def memory(self, after: str, engine: str) -> None:
        self.sampler.tick()
        peak = self.sampler.peaks[engine]
        service = self.services[engine]
        with psycopg.connect(libpq(service.database_url)) as conn:
            pg_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        self.run.memory.append({"after": after, "engine": engine, "api_rss": peak["api_rss"],
                                "worker_rss": peak["worker_rss"],
                                "redis_used": int(self.redis.info("memory")["used_memory"]),
                                "pg_bytes": int(pg_bytes)})

    def _backlog_in(self, t0: float, t1: float) -> list:
        return [s for s in self.sampler.samples.get("onhand", []) if t0 <= s.t <= t1]

    def drained(self, name: str, t0: float) -> float:
        onhand = self.services["onhand"]
        stopped = time.time()
        ok, waited = wait_drained(self.redis, onhand.keys, scenarios.DRAIN_TIMEOUT_S)
        peak = max((s.backlog for s in self._backlog_in(t0, time.time())), default=0)
        self.run.drains.append((name, peak, waited))
        if not ok:
            self.run.notes.append(f"the outbox had not drained {waited:.0f} s after {name} (stopped at {stopped:.0f})")
        return waited

    # ------------------------------------------------------------ steps

    def scenarios(self, emulator: Emulator) -> None:
        sizes, work = self.sizes, self.scratch
        read_data: dict[str, dict] = {}
        steps = [
            ("flash sale", lambda s: scenarios.flash_sale(s, self.redis, sizes, work)),
            ("webhook burst", lambda s: webhook_burst(s, self.redis, emulator, sizes, work)),
            ("wholesale mix", lambda s: self._wholesale(s, read_data)),
            ("read mix", lambda s: scenarios.read_mix(s, self.redis, sizes, work, read_data.get(s.engine, {}))),
        ]
        for name, step in steps:
            for engine, service in self.services.items():
                with self.phase(name, engine):
                    t0 = time.time()
                    outcome: Outcome = step(service)
                self.run.outcomes.append(outcome)
                if engine == "onhand" and outcome.drain_s is not None:
                    peak = max((s.backlog for s in self._backlog_in(t0, time.time())), default=0)
                    self.run.drains.append((f"{name}", peak, outcome.drain_s))
                self.memory(name, engine)
                verdict = "skipped" if outcome.skipped else ("ok" if outcome.ok else "BREACH")
                _say(f"{name} on {engine}: {verdict} "
                     f"({outcome.summary(report.SCENARIO_REQUESTS[outcome.scenario])['rate']:.0f} req/s)")

    def _wholesale(self, service: Service, read_data: dict) -> Outcome:
        outcome, data = scenarios.wholesale_mix(service, self.redis, self.sizes, self.scratch)
        read_data[service.engine] = data
        return outcome

    def wrk_data(self) -> dict[str, dict]:
        """A hot SKU and SPREAD_SKUS spread SKUs with ample stock, per engine."""
        data = {}
        for engine, service in self.services.items():
            _say(f"creating {SPREAD_SKUS + 1} SKUs for the wrk runs on {engine}")
            [hot] = new_skus("wrk-hot", 1)
            prefix = new_skus("wrk-spread", 1)[0]
            spread = [f"{prefix}-{i}" for i in range(SPREAD_SKUS)]
            setup = Setup(service.url)
            try:
                setup.skus([hot, *spread])
                setup.receive({hot: HOT_STOCK, **{s: SPREAD_STOCK for s in spread}})
            finally:
                setup.close()
            data[engine] = {"hot": hot, "prefix": prefix, "received": {hot: HOT_STOCK, **{s: SPREAD_STOCK for s in spread}}}
        return data

    def max_rate(self, engine: str, shape: str, sku: str, spread: int) -> MaxRate:
        service = self.services[engine]
        window = CpuWindow(service, self.srv, self.redis)
        waits = PgWaits(service.database_url)
        stats0 = measure.redis_commandstats(self.redis)
        with self.phase(f"wrk {shape} x{service.api_processes}", engine):
            t0 = time.time()
            waits.start()
            window.start()
            wrk = measure.run_wrk(service.url, sku, spread, WRK_S, self.scratch)
            cpu = window.stop(wrk=wrk.cpu_s)
            pg = waits.stop()
        calls, us = measure.redis_us_per_call(stats0, measure.redis_commandstats(self.redis))
        backlog = self.redis.xlen(service.keys.outbox) if engine == "onhand" else 0
        m = MaxRate(engine, shape, service.api_processes, wrk, cpu, pg, calls if engine == "onhand" else 0,
                    us, backlog)
        _say(f"wrk {shape} on {engine} ({service.api_processes} API procs): {wrk.rps:.0f} orders/s, "
             f"statuses {wrk.statuses}, API CPU {cpu['api']:.0f}%, machine {cpu['machine']:.0f}%")
        if engine == "onhand":
            self.drained(f"wrk {shape} x{service.api_processes}", t0)
        self.run.maxrates.append(m)
        return m

    def open_loop(self, engine: str, fraction: float, hot: str, max_rps: float, label: str = "") -> None:
        service = self.services[engine]
        rate = max(10.0, round(fraction * max_rps))
        window = CpuWindow(service, self.srv, self.redis)
        waits = PgWaits(service.database_url)
        name = label or f"{fraction:.0%}"
        with self.phase(f"open loop {name}", engine):
            t0 = time.time()
            waits.start()
            window.start()
            result = measure.run_openloop(service.url, [hot], rate, OPENLOOP_S, self.scratch)
            cpu = window.stop(generator=result["cpu_s"])
            pg = waits.stop()
            t1 = time.time()
        samples = self._backlog_in(t0, t1)
        ol = OpenLoop(engine, fraction, result, cpu, pg, label=label)
        if engine == "onhand" and samples:
            ol.backlog_start, ol.backlog_end = samples[0].backlog, samples[-1].backlog
            ol.backlog_max = max(s.backlog for s in samples)
            ol.lag_max_s = max(s.lag_s for s in samples)
            ol.drain_s = self.drained(f"open loop {name}", t0)
        _say(f"open loop {name} on {engine}: {rate:.0f}/s, p50 {result['p50']:.1f} ms, "
             f"p99 {result['p99']:.1f} ms, errors {result['errors']}, timeouts {result['timeouts']}")
        self.run.openloops.append(ol)

    def profile(self, engine: str, hot: str) -> None:
        service = self.services[engine]
        pid = service.api_worker_pids()[0]
        with self.phase("profile", engine):
            t0 = time.time()
            load = threading.Thread(target=measure.run_wrk,
                                    args=(service.url, hot, 1, PROFILE_S + 3, self.scratch), daemon=True)
            load.start()
            time.sleep(1.5)
            try:
                self.run.profiles[engine] = measure.py_spy(pid, PROFILE_S, self.scratch / f"profile-{engine}.txt")
            except Exception as exc:  # noqa: BLE001 - a failed profile must not cost the whole report
                self.run.profiles[engine] = measure.Profile(error=f"profiling failed: {exc!r}")
            load.join()
        if engine == "onhand":
            self.drained("profile", t0)

    def throughput(self) -> None:
        data = self.wrk_data()
        for engine in self.services:
            self.max_rate(engine, "hot", data[engine]["hot"], 1)
        for engine in self.services:
            self.max_rate(engine, "spread", data[engine]["prefix"], SPREAD_SKUS)
        for fraction in (0.5, 0.8):
            for engine in self.services:
                self.open_loop(engine, fraction, data[engine]["hot"], self.run.maxrate(engine, "hot").wrk.rps)
        # the same rate for both: onhand at the baseline's 80%
        own, theirs = self.run.maxrate("onhand", "hot").wrk.rps, self.run.maxrate("baseline", "hot").wrk.rps
        if own > 0:
            self.open_loop("onhand", 0.8 * theirs / own, data["onhand"]["hot"], own,
                           label="the baseline's 80% rate")
        for engine in self.services:
            self.profile(engine, data[engine]["hot"])
        for engine in self.services:
            self.memory("wrk, open loop, profile (1 API process)", engine)
        for engine, service in self.services.items():
            _say(f"restarting {engine} with 2 API processes")
            self.sampler.reset_peaks(engine)
            service.restart(api_processes=2)
            self.max_rate(engine, "hot", data[engine]["hot"], 1)
            self.memory("wrk hot, 2 API processes (peaks since the restart)", engine)
        self.run.stock_checks.append(invariants.check_onhand_stock(
            "wrk and open loop", self.redis, self.services["onhand"].keys,
            self.services["onhand"].database_url, data["onhand"]["received"]))
        self.run.stock_checks.append(invariants.check_baseline_stock(
            "wrk and open loop", self.services["baseline"].database_url, data["baseline"]["received"]))

    # ------------------------------------------------------------ the whole run

    def execute(self) -> int:
        self.run.started = datetime.now(UTC).isoformat(timespec="seconds")
        self.run.machine = _machine()
        start = time.monotonic()
        self.scratch = scratch_dir()
        if not self.quick and shutil.which("wrk") is None:
            self.run.notes.append("wrk is not installed (apt-get install wrk): maximum throughput, the "
                                  "open-loop runs (which need it) and the profile were skipped")
        try:
            with servers(self.settings, self.scratch) as srv:
                self.srv = srv
                self.run.durability = srv.durability
                self._with_servers()
        finally:
            self._keep_logs()
            shutil.rmtree(self.scratch, ignore_errors=True)
        self.run.seconds = time.monotonic() - start
        self.run.machine["load_after"] = _load()
        self.run.machine["load_during_max"] = f"{max(self.loads, default=0):.2f}"
        self.run.machine["load_before"] += f" (1-minute load at the phases' starts: up to {max(self.loads, default=0):.2f})"
        path = report.write(self.run, self.out, analysis(self.run))
        return self._summary(path)

    def _with_servers(self) -> None:
        _say(f"servers: Redis {self.srv.durability.get('redis')}, PostgreSQL {self.srv.durability.get('postgres')}")
        emulator = Emulator(self.scratch)
        emulator.spawn()
        extra = {"ONHAND_SHOPIFY_API_URL": emulator.url, "ONHAND_SHOPIFY_ACCESS_TOKEN": "shpat_emulator_token"}
        if unsafe := unsafe_redis_env(self.srv):
            extra.update(unsafe)
            self.run.notes.append(f"the given Redis runs with {self.srv.durability.get('redis')}, not appendfsync "
                                  "always: durability parity with the baseline is NOT met in this run")
        if "synchronous_commit=on" not in self.srv.durability.get("postgres", ""):
            self.run.notes.append(f"the given PostgreSQL runs with {self.srv.durability.get('postgres')}: "
                                  "durability parity is NOT met in this run")
        tag = uuid.uuid4().hex[:6]
        self.redis = Redis.from_url(self.srv.redis_url)
        self.sampler = Sampler(self.srv.redis_url)
        try:
            for engine, merchant in (("onhand", f"bench{tag}"), ("baseline", f"benchbl{tag}")):
                service = Service(engine, self.srv, self.scratch, merchant=merchant, extra_env=extra)
                _say(f"starting onhand serve for {engine}")
                service.spawn()
                self.services[engine] = service
            emulator.wait_ready()
            for service in self.services.values():
                service.wait_ready()
                self.sampler.watch(service)
            self.sampler.start()
            self.scenarios(emulator)
            if not self.quick and shutil.which("wrk"):
                self.throughput()
            self.run.samples = dict(self.sampler.samples)
        finally:
            self.sampler.stop()
            for service in self.services.values():
                service.stop()
            emulator.stop()
            if not self.srv.embedded:  # a shared Redis: leave nothing behind
                for service in self.services.values():
                    forget_merchant(self.redis, service.merchant)
            self.redis.close()

    def _keep_logs(self) -> None:
        logs = self.out / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for pattern in ("*.log", "profile-*.txt"):
            for f in self.scratch.glob(pattern):
                shutil.copy(f, logs / f.name)

    def _summary(self, path: Path) -> int:
        breaches = self.run.breaches
        print()
        print(f"report: {path} ({self.run.seconds:.0f} s)")
        for line in report._summary_rows(self.run)[2:]:
            print("  " + line.replace("**", ""))
        if breaches:
            print(f"FAILED: {len(breaches)} breaches")
            for b in breaches:
                print(f"  - {b}")
            return 1
        print("OK: no invariant breach, no failed check, no server error")
        return 0


def analysis(run: Run) -> list[str]:
    """Plain statements read off this run's figures (the report's prose)."""
    lines = []
    hot_a, hot_b = run.maxrate("onhand", "hot"), run.maxrate("baseline", "hot")
    spr_a, spr_b = run.maxrate("onhand", "spread"), run.maxrate("baseline", "spread")
    if hot_a and hot_b:
        lines.append(f"- Hot SKU at maximum: onhand {hot_a.wrk.rps:.0f} orders/s, the baseline {hot_b.wrk.rps:.0f} "
                     f"({hot_a.wrk.rps / hot_b.wrk.rps:.1f}x).")
        lock = sum(v for k, v in hot_b.pg_waits.items() if k.startswith("Lock"))
        idle = hot_b.pg_waits.get("idle in transaction (waiting for the app)", 0.0)
        if lock:
            lines.append(f"  On the baseline, {lock:.1f} sessions on average waited for the hot row's lock while "
                         f"{idle:.1f} held a transaction open waiting on the application: the row lock serialises "
                         "the orders, and the lock is held across the application's round trips.")
    if spr_a and spr_b:
        lines.append(f"- Spread SKUs: onhand {spr_a.wrk.rps:.0f}, the baseline {spr_b.wrk.rps:.0f} orders/s "
                     f"({spr_a.wrk.rps / spr_b.wrk.rps:.1f}x): with no lock to share, the baseline "
                     + ("closes much of the gap" if spr_b.wrk.rps / max(1, hot_b.wrk.rps if hot_b else 1) > 1.3
                        else "stays where it was on the hot SKU: its cost is CPU, not the lock")
                     + ".")
    for m in (hot_a, hot_b):
        if m:
            groups = sorted(((k, v) for k, v in m.cpu.items() if k not in ("machine", "other") and not math.isnan(v)),
                            key=lambda kv: -kv[1])
            shares = ", ".join(f"{k} {v:.0f}%" for k, v in groups)
            saturated = m.cpu["machine"] >= 185
            lines.append(f"- Bottleneck, {m.engine} at maximum (hot SKU): "
                         + (f"the machine is saturated ({m.cpu['machine']:.0f}% of 200%), so the processes "
                            f"compete for the two cores: {shares}, everything else {m.cpu.get('other', 0):.0f}%."
                            if saturated else
                            f"the busiest process group is {groups[0][0]} at {groups[0][1]:.0f}% of a core "
                            f"({shares}; machine {m.cpu['machine']:.0f}% of 200%)."))
    ws_a, ws_b = run.outcome("wholesale", "onhand"), run.outcome("wholesale", "baseline")
    if ws_a and ws_b and not ws_a.skipped and not ws_b.skipped:
        ra, rb = ws_a.summary()["rate"], ws_b.summary()["rate"]
        if rb and abs(ra / rb - 1) < 0.1:
            lines.append("- Wholesale mix: its clients pause between orders (think time), and both engines kept "
                         f"up with them ({ra:.0f} and {rb:.0f} requests/s): the throughput ratio is the clients' "
                         "pace, the latencies are the comparison.")
    wb = run.outcome("webhooks", "onhand")
    if wb and wb.burst and wb.burst.get("emulator_cpu_pct", 0) > wb.burst.get("api_cpu_pct", 0):
        lines.append(f"- Webhook burst: the emulator, a Python HTTP client, was busier than the API "
                     f"({wb.burst['emulator_cpu_pct']:.0f}% against {wb.burst['api_cpu_pct']:.0f}% of a core), so it "
                     "set the pace; the comparison there is the API's CPU per delivery and the correctness checks.")
    wins = []
    for o in run.outcomes:
        if o.engine != "onhand" or o.skipped:
            continue
        b = run.outcome(o.scenario, "baseline")
        if b and not b.skipped:
            sa, sb = o.summary(report.SCENARIO_REQUESTS[o.scenario]), b.summary(report.SCENARIO_REQUESTS[o.scenario])
            # a win is a margin above the run-to-run noise of a shared machine
            if sb["p50"] and sa["p50"] > 1.05 * sb["p50"]:
                wins.append(f"{o.scenario} p50 latency ({sb['p50']:.1f} vs {sa['p50']:.1f} ms)")
            if sb["p99"] and sa["p99"] > 1.05 * sb["p99"]:
                wins.append(f"{o.scenario} p99 latency ({sb['p99']:.0f} vs {sa['p99']:.0f} ms)")
            if sa["rate"] and sb["rate"] > 1.05 * sa["rate"]:
                wins.append(f"{o.scenario} throughput ({sb['rate']:.0f} vs {sa['rate']:.0f}/s)")
    for frac in (0.5, 0.8):
        a = next((x for x in run.openloops if x.engine == "onhand" and x.fraction == frac), None)
        b = next((x for x in run.openloops if x.engine == "baseline" and x.fraction == frac), None)
        for p in ("p50", "p99"):
            if a and b and a.result[p] and b.result[p] and a.result[p] > 1.05 * b.result[p]:
                wins.append(f"open-loop {p} at {frac:.0%} of its own (lower) maximum "
                            f"({b.result[p]:.1f} vs {a.result[p]:.1f} ms)")
    if spr_a and spr_b and spr_b.wrk.rps > spr_a.wrk.rps:
        wins.append(f"spread-SKU maximum ({spr_b.wrk.rps:.0f} vs {spr_a.wrk.rps:.0f}/s)")
    lines.append("- Where the baseline wins in this run: " + ("; ".join(wins) if wins else "no throughput or "
                 "latency figure") + ". By design it also needs no outbox, no drain worker and no Redis memory "
                 "per open order, and PostgreSQL is current the moment an order is answered.")
    return lines


def main(settings: Settings, out: str | os.PathLike = "bench-report", quick: bool = False) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per setup request otherwise
    return Bench(settings, Path(out).resolve(), quick).execute()
