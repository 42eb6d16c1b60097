"""The benchmark's report: report.md plus PNG charts, from what bench.py
collected. Every comparison is a ratio of two figures from the same run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from loadtests import charts
from loadtests.charts import SCENARIO_REQUESTS, SCENARIO_TITLES
from loadtests.measure import SPREAD_SKUS, Profile, WrkResult
from loadtests.scenarios import Outcome
from loadtests.stack import Sample


@dataclass
class MaxRate:
    engine: str
    shape: str  # "hot" or "spread"
    api_processes: int
    wrk: WrkResult
    cpu: dict[str, float]
    pg_waits: dict[str, float] = field(default_factory=dict)
    redis_calls: int = 0
    redis_us_per_call: float = 0.0
    backlog_end: int = 0


@dataclass
class OpenLoop:
    engine: str
    fraction: float
    result: dict
    cpu: dict[str, float] = field(default_factory=dict)
    pg_waits: dict[str, float] = field(default_factory=dict)
    backlog_start: int = 0
    backlog_end: int = 0
    backlog_max: int = 0
    lag_max_s: float = 0.0
    drain_s: float | None = None
    #: Set for a run at another engine's rate (the same-rate comparison).
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or f"{self.fraction:.0%}"


@dataclass
class Run:
    command: str
    quick: bool
    started: str = ""
    seconds: float = 0.0
    machine: dict = field(default_factory=dict)
    durability: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    memory: list[dict] = field(default_factory=list)
    maxrates: list[MaxRate] = field(default_factory=list)
    openloops: list[OpenLoop] = field(default_factory=list)
    profiles: dict[str, Profile] = field(default_factory=dict)
    stock_checks: list = field(default_factory=list)
    phases: list[tuple[str, str, float, float]] = field(default_factory=list)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    drains: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def breaches(self) -> list[str]:
        out = []
        for o in self.outcomes:
            if o.skipped:
                continue
            if o.server_errors:
                out.append(f"{o.scenario}/{o.engine}: {o.server_errors} server errors (5xx)")
            if o.failed_checks:
                out.append(f"{o.scenario}/{o.engine}: {o.failed_checks} failed response checks "
                           f"{dict(o.record.get('failed_checks', {}))}")
            if o.invariants and not o.invariants.ok:
                out += [f"{o.scenario}/{o.engine}: {b}" for b in o.invariants.breaches]
        for inv in self.stock_checks:
            out += [f"{inv.scenario}/{inv.engine}: {b}" for b in inv.breaches]
        return out

    def outcome(self, scenario: str, engine: str) -> Outcome | None:
        return next((o for o in self.outcomes if o.scenario == scenario and o.engine == engine), None)

    def maxrate(self, engine: str, shape: str, processes: int = 1) -> MaxRate | None:
        return next((m for m in self.maxrates if m.engine == engine and m.shape == shape
                     and m.api_processes == processes), None)


# ---------------------------------------------------------------- formatting


def _ratio(a: float | None, b: float | None, higher_is_better: bool = True) -> str:
    if not a or not b or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return "n/a"
    r = a / b if higher_is_better else b / a
    return f"**{r:.1f}x**" if r >= 1 else f"{r:.2f}x"


def _mb(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 1024**2:.0f} MB"


def _ms(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.0f}%"


def _frame(f: str) -> str:
    """'OrderController.create (api/orders.py:130)' with the path shortened."""
    name, _, where = f.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"`{name}` ({where})"


# ---------------------------------------------------------------- Markdown


def _summary_rows(run: Run) -> list[str]:
    rows = ["| scenario | figure | onhand | baseline | onhand vs baseline |", "|---|---|---|---|---|"]
    for scenario in ("flash", "webhooks", "wholesale", "reads"):
        a, b = run.outcome(scenario, "onhand"), run.outcome(scenario, "baseline")
        if a is None:
            continue
        if a.skipped or (b is not None and b.skipped):
            why = a.skipped or b.skipped
            rows.append(f"| {scenario} | not compared | | | {why} |")
            if a.skipped:
                continue
        prefix = SCENARIO_REQUESTS[scenario]
        sa = a.summary(prefix)
        sb = b.summary(prefix) if b and not b.skipped else None
        what = "deliveries/s absorbed in the burst" if scenario == "webhooks" else "throughput (Locust, req/s)"
        rows.append(f"| {scenario} | {what} | {sa['rate']:.0f} | "
                    f"{sb['rate']:.0f} | {_ratio(sa['rate'], sb['rate'])} |" if sb else
                    f"| {scenario} | {what} | {sa['rate']:.0f} | n/a | n/a |")
        for p in ("p50", "p99"):
            rows.append(f"| {scenario} | latency {p} (closed loop) | {_ms(sa[p])} | "
                        f"{_ms(sb[p]) if sb else 'n/a'} | {_ratio(sa[p], sb[p] if sb else None, False)} |")
        if scenario == "webhooks" and sb:
            ka, kb = sa.get("api_cpu_ms_per_delivery"), sb.get("api_cpu_ms_per_delivery")
            rows.append(f"| {scenario} | API CPU per delivery | {ka:.2f} ms | {kb:.2f} ms | {_ratio(ka, kb, False)} |")
        ca = "0 breaches" if a.ok else "**BREACH**"
        cb = ("0 breaches" if b.ok else "**BREACH**") if b and not b.skipped else "n/a"
        rows.append(f"| {scenario} | correctness (oversell, conservation, exactly once, checks) | {ca} | {cb} | |")
    for shape in ("hot", "spread"):
        a, b = run.maxrate("onhand", shape), run.maxrate("baseline", shape)
        if a and b:
            rows.append(f"| max throughput, {shape} SKU{'s' if shape == 'spread' else ''} | wrk orders/s "
                        f"(1 API process) | {a.wrk.rps:.0f} | {b.wrk.rps:.0f} | {_ratio(a.wrk.rps, b.wrk.rps)} |")
    for frac in (0.5, 0.8):
        a = next((o for o in run.openloops if o.engine == "onhand" and o.fraction == frac), None)
        b = next((o for o in run.openloops if o.engine == "baseline" and o.fraction == frac), None)
        if a and b:
            rows.append(f"| open loop at {frac:.0%} of own max | rate | {a.result['rate']:.0f}/s | "
                        f"{b.result['rate']:.0f}/s | {_ratio(a.result['rate'], b.result['rate'])} |")
            for p in ("p50", "p99", "p99.9"):
                rows.append(f"| open loop at {frac:.0%} of own max | {p} | {_ms(a.result[p])} | "
                            f"{_ms(b.result[p])} | {_ratio(a.result[p], b.result[p], False)} |")
    same = next((o for o in run.openloops if o.engine == "onhand" and o.label), None)
    b = next((o for o in run.openloops if o.engine == "baseline" and o.fraction == 0.8), None)
    if same and b:
        for p in ("p50", "p99", "p99.9"):
            rows.append(f"| open loop, both at {b.result['rate']:.0f}/s (the baseline's 80%) | {p} | "
                        f"{_ms(same.result[p])} | {_ms(b.result[p])} | {_ratio(same.result[p], b.result[p], False)} |")
    return rows


def _scenarios(run: Run, pngs: dict[str, str | None]) -> list[str]:
    lines = []
    for scenario in ("flash", "webhooks", "wholesale", "reads"):
        found = [o for o in run.outcomes if o.scenario == scenario]
        if not found:
            continue
        lines += [f"### {SCENARIO_TITLES[scenario]}", ""]
        for o in found:
            if o.skipped:
                lines.append(f"- **{o.engine}**: skipped - {o.skipped}")
                continue
            s = o.summary(SCENARIO_REQUESTS[scenario])
            statuses = "; ".join(f"{name}: {', '.join(f'{k}x{v}' for k, v in sorted(codes.items()))}"
                                 for name, codes in sorted(o.record.get("statuses", {}).items()))
            lines.append(f"- **{o.engine}**: {s['requests']} requests, {s['rate']:.0f}/s, "
                         f"p50 {_ms(s['p50'])}, p95 {_ms(s['p95'])}, p99 {_ms(s['p99'])}. Statuses: {statuses}. "
                         + "".join(f"{n}. " for n in o.notes)
                         + (f"Outbox drained {o.drain_s:.1f} s after the load stopped. " if o.drain_s is not None else "")
                         + f"Locust used {o.locust_cpu_s:.1f} CPU s over {o.seconds:.0f} s "
                         f"({100 * o.locust_cpu_s / max(o.seconds, 0.001):.0f}% of a core)"
                         + (f"; the emulator {o.emulator_cpu_s:.1f} CPU s during the burst." if o.emulator_cpu_s else "."))
            if o.failed_checks or o.server_errors:
                lines.append(f"  - failed checks: {o.record.get('failed_checks')}, 5xx: {o.server_errors}; "
                             f"examples: {o.record.get('examples')}")
            if o.invariants:
                verdict = "all hold" if o.invariants.ok else "BREACHED: " + "; ".join(o.invariants.breaches)
                lines.append(f"  - invariants ({len(o.invariants.passed)} checks): {verdict}")
        if pngs.get(scenario):
            lines += ["", f"![{scenario}]({pngs[scenario]})"]
        lines.append("")
    return lines


def _maxrate_section(run: Run, chart: str | None) -> list[str]:
    if not run.maxrates:
        return []
    lines = ["## Maximum throughput (wrk)", "",
             ("wrk, one thread, 64 keep-alive connections, POSTing one-unit DTC orders (`loadtests/wrk/orders.lua`); "
             f"hot = every order names the same SKU, spread = a random one of {SPREAD_SKUS:,}. Every answer must be 201. "
             "CPU is each process group's share of one core over the run (the machine has two: 200%)."), "",
             "| engine | shape | API procs | orders/s | p50 | p99 | statuses | API | worker | Redis | PostgreSQL | wrk | other | machine |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in run.maxrates:
        c = m.cpu
        lines.append(f"| {m.engine} | {m.shape} | {m.api_processes} | {m.wrk.rps:.0f} | {_ms(m.wrk.latency_ms.get('p50'))} | "
                     f"{_ms(m.wrk.latency_ms.get('p99'))} | {', '.join(f'{k}x{v}' for k, v in m.wrk.statuses.items())}"
                     f"{' ' + m.wrk.errors if m.wrk.errors else ''} | {_pct(c.get('api', 0))} | {_pct(c.get('worker', 0))} | "
                     f"{_pct(c.get('redis', 0))} | {_pct(c.get('postgres', float('nan')))} | {_pct(c.get('wrk', 0))} | "
                     f"{_pct(c.get('other', 0))} | {_pct(c.get('machine', 0))} |")
    lines.append("")
    for m in run.maxrates:
        if m.engine == "onhand" and m.redis_calls:
            behind = m.backlog_end > 2 * m.wrk.rps
            lines.append(f"- onhand {m.shape} ({m.api_processes} API procs): Redis spent {m.redis_us_per_call:.1f} us per "
                         f"script call (API and drain, {m.redis_calls} calls); outbox backlog at the end: "
                         f"{m.backlog_end} entries"
                         + (f" ({m.backlog_end / max(m.wrk.rps, 1):.1f} s of orders): the drain fell behind, so this "
                            "maximum is a burst rate, not one PostgreSQL keeps up with." if behind else
                            ": the drain kept up."))
        if m.pg_waits:
            waits = ", ".join(f"{k} {v:.1f}" for k, v in m.pg_waits.items())
            lines.append(f"- {m.engine} {m.shape} ({m.api_processes} API procs): PostgreSQL sessions by state "
                         f"(average number, sampled every 20 ms): {waits}.")
    if chart:
        lines += ["", f"![max throughput]({chart})"]
    return lines + [""]


def _openloop_section(run: Run, chart: str | None) -> list[str]:
    if not run.openloops:
        return []
    lines = ["## Latency at fixed request rates (open loop)", "",
             ("`loadtests/openloop.py` sends at a fixed rate and times each request from its intended send time "
             "(a request that waits for a free connection or a slow server still counts from then: no coordinated "
             "omission). Rates are 50% and 80% of each engine's own wrk maximum on the hot SKU, and onhand once more at "
             "the baseline's 80% rate (the same rate for both); the first 2 s are warm-up and left out."), "",
             "| engine | load | rate | achieved | p50 | p90 | p99 | p99.9 | max | errors | timeouts | generator CPU | outbox backlog start -> end (max), lag max |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for ol in run.openloops:
        r = ol.result
        backlog = (f"{ol.backlog_start} -> {ol.backlog_end} ({ol.backlog_max}), {ol.lag_max_s:.1f} s"
                   if ol.engine == "onhand" else "n/a")
        lines.append(f"| {ol.engine} | {ol.name} | {r['rate']:.0f}/s | {r['achieved_rate']:.0f}/s | {_ms(r['p50'])} | "
                     f"{_ms(r['p90'])} | {_ms(r['p99'])} | {_ms(r['p99.9'])} | {_ms(r['max_ms'])} | {r['errors']} | "
                     f"{r['timeouts']} | {r['cpu_s']:.1f} s | {backlog} |")
    for ol in run.openloops:
        r = ol.result
        if r["achieved_rate"] < 0.95 * r["rate"]:
            lines.append(f"- {ol.engine} at {ol.name}: **not sustained**: it answered {r['achieved_rate']:.0f} of "
                         f"{r['rate']:.0f} requests/s, so requests queued and the latencies grow with the run's length.")
        if ol.cpu:
            c = ol.cpu
            lines.append(f"- {ol.engine} at {ol.name}: CPU API {_pct(c.get('api', 0))}, worker "
                         f"{_pct(c.get('worker', 0))}, Redis {_pct(c.get('redis', 0))}, PostgreSQL "
                         f"{_pct(c.get('postgres', float('nan')))}, generator {_pct(c.get('generator', 0))}, "
                         f"everything else {_pct(c.get('other', 0))} (machine {_pct(c.get('machine', 0))} of 200%)"
                         + ("; PostgreSQL sessions: " + ", ".join(f"{k} {v:.1f}" for k, v in list(ol.pg_waits.items())[:4])
                            if ol.pg_waits else "") + ".")
    for ol in run.openloops:
        if ol.engine == "onhand":
            grew = ol.backlog_end > max(2 * ol.result["rate"], 2 * ol.backlog_start + 100)
            lines.append(f"- onhand at {ol.name}: the outbox drain "
                         + ("**did not keep up**: the backlog kept growing, so this rate was not sustained "
                            "end to end (orders were accepted, PostgreSQL fell behind)"
                            if grew else "kept up (the backlog stayed bounded)")
                         + (f"; it emptied {ol.drain_s:.1f} s after the load stopped." if ol.drain_s is not None else "."))
    if chart:
        lines += ["", f"![open loop]({chart})"]
    return lines + [""]


def _memory_section(run: Run) -> list[str]:
    if not run.memory:
        return []
    lines = ["## Memory", "",
             ("Peak resident memory of the API processes (granian's supervisor and its workers, summed) and of "
             "the worker process so far, Redis `used_memory` (both engines share one Valkey; the baseline keeps "
             "only API keys and customers there), and each engine's PostgreSQL database size, after each phase."), "",
             "| after | engine | API peak RSS | worker peak RSS | Redis used_memory | PostgreSQL database |",
             "|---|---|---|---|---|---|"]
    for m in run.memory:
        lines.append(f"| {m['after']} | {m['engine']} | {_mb(m['api_rss'])} | "
                     f"{_mb(m['worker_rss']) if m['engine'] == 'onhand' else 'none'} | {_mb(m['redis_used'])} | "
                     f"{_mb(m['pg_bytes'])} |")
    return lines + [""]


def _profile_section(run: Run) -> list[str]:
    if not run.profiles:
        return []
    lines = ["## Where the time goes (py-spy on the API process at maximum throughput, hot SKU)", ""]
    for engine, p in run.profiles.items():
        if p.error:
            lines += [f"- {engine}: {p.error}", ""]
            continue
        lines += [f"### {engine}", "",
                  f"{p.samples} samples of the event-loop thread; it was busy {p.busy:.0%} of the time.", "",
                  "By layer (self time):", ""]
        lines += [f"- {name}: {share:.0f}%" for name, share in p.layers]
        lines += ["", "Top functions by self time:", ""]
        lines += [f"{i}. {_frame(f)}: {share:.1f}%" for i, (f, share) in enumerate(p.top_self[:12], 1)]
        lines += ["", "Top functions by inclusive time (below the server's own frames):", ""]
        lines += [f"{i}. {_frame(f)}: {share:.0f}%" for i, (f, share) in enumerate(p.top_inclusive[:12], 1)]
        lines.append("")
    return lines


def _processes_section(run: Run) -> list[str]:
    rows = []
    for engine in ("onhand", "baseline"):
        one, two = run.maxrate(engine, "hot", 1), run.maxrate(engine, "hot", 2)
        if one and two:
            rows.append(f"| {engine} | {one.wrk.rps:.0f} | {two.wrk.rps:.0f} | {two.wrk.rps / one.wrk.rps:.2f}x | "
                        f"{_pct(one.cpu.get('api', 0))} -> {_pct(two.cpu.get('api', 0))} | "
                        f"{_pct(one.cpu.get('machine', 0))} -> {_pct(two.cpu.get('machine', 0))} |")
    if not rows:
        return []
    return ["## One versus two API processes (hot SKU, wrk)", "",
            "| engine | 1 process | 2 processes | change | API CPU | machine CPU (of 200%) |", "|---|---|---|---|---|---|",
            *rows, ""]


def _generator_section(run: Run) -> list[str]:
    """How much CPU the load generators took from the two cores the servers share."""
    lines = ["## The load generators", "",
             ("Everything runs on the same two cores, so every generator takes CPU the servers could have "
             "used. Shares are of one core, averaged over each run."), ""]
    for m in run.maxrates:
        wrk = m.wrk.cpu_s / max(m.wrk.seconds, 0.001) * 100
        line = f"- wrk, {m.engine} {m.shape} ({m.api_processes} API procs): {wrk:.0f}% of a core"
        if m.cpu.get("machine", 0) >= 185:
            bound = m.wrk.rps * m.cpu["machine"] / max(1.0, m.cpu["machine"] - wrk)
            line += (f"; the machine was saturated ({m.cpu['machine']:.0f}% of 200%), so without the generator "
                     f"the figure could rise to at most ~{bound:.0f}/s (proportional correction, an upper bound)")
        lines.append(line + ".")
    for ol in run.openloops:
        secs = ol.result["sent"] / max(ol.result["rate"], 1) + 2
        lines.append(f"- open-loop generator, {ol.engine} at {ol.name}: {ol.result['cpu_s']:.1f} CPU s "
                     f"(~{100 * ol.result['cpu_s'] / secs:.0f}% of a core).")
    for o in run.outcomes:
        if not o.skipped and o.seconds:
            lines.append(f"- Locust, {o.scenario} on {o.engine}: {100 * o.locust_cpu_s / o.seconds:.0f}% of a core"
                         + (f" (plus the emulator: {o.emulator_cpu_s:.1f} CPU s in the burst)" if o.emulator_cpu_s else "")
                         + ".")
    return lines + ["", ("wrk is the instrument for maximum throughput because Locust, measured on this machine "
                        "kind, reads about 38% below wrk on the same endpoint and tops out near 12,000 requests/s "
                        "on a full core; the Locust figures above are for the scenarios' checks and their "
                        "onhand/baseline ratios, which share the same generator cost."), ""]


def write(run: Run, out: Path, analysis: list[str] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    pngs = {s: charts.scenario(run, s, out) for s in SCENARIO_TITLES}
    breaches = run.breaches
    lines = [
        "# onhand load benchmark" + (" (quick smoke)" if run.quick else ""), "",
        f"Command: `{run.command}`. Started {run.started}, took {run.seconds:.0f} s.", "",
        (f"Machine: {run.machine.get('cpus')} CPUs ({run.machine.get('cpu_model', '?')}), "
        f"{run.machine.get('memory_gb', 0):.0f} GB; load average before {run.machine.get('load_before')}, "
        f"after {run.machine.get('load_after')}; Python {run.machine.get('python')}."), "",
        (f"Durability, both sides: Redis {run.durability.get('redis')} ({run.durability.get('redis_version')}); "
        f"PostgreSQL {run.durability.get('postgres')} ({run.durability.get('postgres_version')}). "
        "Both engines run behind the same Litestar app and `onhand serve` (granian), with the same number "
        "of API processes; the baseline (`onhand serve --app loadtests.baseline:create_baseline_app`, loadtests/baseline.py) reserves with "
        "PostgreSQL row locks, the way Saleor and Medusa do."), "",
        "**Correctness: " + ("no invariant breach, no failed check, no server error.**" if not breaches
                             else f"{len(breaches)} BREACHES.**"), "",
    ]
    lines += [f"- {b}" for b in breaches]
    lines += [f"- note: {n}" for n in run.notes]
    lines += ["", "## Summary: onhand against the baseline, same run, same machine", "", *_summary_rows(run), ""]
    if analysis:
        lines += ["## Reading the figures", "", *analysis, ""]
    lines += ["## Scenarios (Locust, FastHttpUser, every response checked)", "", *_scenarios(run, pngs)]
    lines += _maxrate_section(run, charts.maxrate(run, out))
    lines += _openloop_section(run, charts.openloop(run, out))
    lines += _processes_section(run)
    lines += _profile_section(run)
    if run.maxrates or run.openloops:
        lines += _generator_section(run)
    lines += _memory_section(run)
    outbox = charts.outbox(run, out)
    if run.drains or outbox:
        lines += ["## Outbox drain", ""]
        lines += [f"- after {name}: the backlog peaked at {peak:.0f} entries and emptied {secs:.1f} s after the load stopped"
                  for name, peak, secs in run.drains]
        if outbox:
            lines += ["", f"![outbox]({outbox})"]
        lines.append("")
    if run.stock_checks:
        lines += ["## Stock checks after the wrk and open-loop runs", ""]
        lines += [f"- {inv.engine}: {'all hold' if inv.ok else 'BREACHED'} ({len(inv.passed)} checks on the "
                  f"SKUs those runs used)" for inv in run.stock_checks]
        lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "results.json").write_bytes(msgspec.json.encode(run))  # every figure, for later analysis
    return path
