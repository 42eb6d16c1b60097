"""The report's PNG charts (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from loadtests.report import Run

COLORS = {"onhand": "#1f77b4", "baseline": "#d62728"}
SCENARIO_TITLES = {
    "flash": "Flash sale: one-unit DTC orders racing for one hot SKU",
    "webhooks": "Shopify webhook burst (signed deliveries through the emulator)",
    "wholesale": "Wholesale POs (5-200 lines, Idempotency-Key) mixed with DTC orders",
    "reads": "Read mix: inventory and order lookups",
}
#: Which requests a scenario's figures are about (by Locust name prefix).
SCENARIO_REQUESTS = {"flash": "flash:", "webhooks": "webhook:", "wholesale": "", "reads": "read:"}


def scenario(run: Run, scenario: str, out: Path) -> str | None:
    prefix = SCENARIO_REQUESTS[scenario]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    drawn = False
    for engine in ("onhand", "baseline"):
        o = run.outcome(scenario, engine)
        if o is None or o.skipped:
            continue
        t, n, p50, p99 = o.series(prefix)
        if not t:
            continue
        drawn = True
        ax1.plot(t, n, color=COLORS[engine], label=engine)
        ax2.plot(t, p50, color=COLORS[engine], label=f"{engine} p50")
        ax2.plot(t, p99, color=COLORS[engine], linestyle="--", label=f"{engine} p99")
    if not drawn:
        plt.close(fig)
        return None
    ax1.set_ylabel("requests / s")
    ax1.set_title(SCENARIO_TITLES[scenario], fontsize=10)
    ax1.legend()
    ax2.set_ylabel("latency (ms)")
    ax2.set_xlabel("seconds since the scenario started")
    ax2.set_yscale("log")
    ax2.legend(fontsize=8)
    name = f"{scenario}.png"
    fig.tight_layout()
    fig.savefig(out / name, dpi=90)
    plt.close(fig)
    return name


def openloop(run: Run, out: Path) -> str | None:
    if not run.openloops:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for ol in run.openloops:
        series = ol.result.get("series") or []
        if not series:
            continue
        style = "-" if ol.fraction > 0.6 else ":"
        ax.plot([s[0] for s in series], [s[3] for s in series], style, color=COLORS[ol.engine],
                label=f"{ol.engine} p99 at {ol.name} ({ol.result['rate']:.0f}/s)")
    ax.set_yscale("log")
    ax.set_xlabel("seconds")
    ax.set_ylabel("p99 per second (ms, from intended send time)")
    ax.set_title("Open-loop latency at fixed rates (hot SKU)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "openloop.png", dpi=90)
    plt.close(fig)
    return "openloop.png"


def outbox(run: Run, out: Path) -> str | None:
    samples = run.samples.get("onhand") or []
    if not samples:
        return None
    t0 = samples[0].t
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot([s.t - t0 for s in samples], [s.backlog for s in samples], color=COLORS["onhand"],
            label="outbox backlog (entries)")
    ax.set_ylabel("entries not yet in PostgreSQL")
    ax2 = ax.twinx()
    ax2.plot([s.t - t0 for s in samples], [s.lag_s for s in samples], color="#ff7f0e", alpha=0.7,
             label="lag (age of the oldest entry, s)")
    ax2.set_ylabel("lag (s)")
    for name, engine, a, b in run.phases:
        if engine == "onhand":
            ax.axvspan(a - t0, b - t0, color="#dddddd", alpha=0.5)
            ax.text(a - t0, ax.get_ylim()[1] * 0.95, name, fontsize=6, rotation=90, va="top")
    ax.set_xlabel("seconds since the bench started")
    ax.set_title("onhand outbox drain during the run (shaded: onhand load phases)", fontsize=10)
    fig.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "outbox.png", dpi=90)
    plt.close(fig)
    return "outbox.png"


def maxrate(run: Run, out: Path) -> str | None:
    if not run.maxrates:
        return None
    labels = []
    for m in run.maxrates:
        label = f"{m.shape}, {m.api_processes} API proc"
        if label not in labels:
            labels.append(label)
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.38
    for k, engine in enumerate(("onhand", "baseline")):
        values = []
        for label in labels:
            m = next((m for m in run.maxrates if m.engine == engine
                      and f"{m.shape}, {m.api_processes} API proc" == label), None)
            values.append(m.wrk.rps if m else 0)
        xs = [i + (k - 0.5) * width for i in range(len(labels))]
        ax.bar(xs, values, width, color=COLORS[engine], label=engine)
        for x, v in zip(xs, values):
            ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_ylabel("orders / s (wrk, 64 connections)")
    ax.set_title("Maximum throughput: one-unit DTC orders", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "maxrate.png", dpi=90)
    plt.close(fig)
    return "maxrate.png"
