"""The CI smoke of the load benchmark (`onhand bench load --quick`).

Runs every Locust scenario at small sizes on both engines (onhand and the
PostgreSQL row-lock baseline) behind real `onhand serve` processes, then the
invariant checks. It fails on any invariant breach, failed response check or
server error, never on speed. About 75 s on the 2-core CI machine, so it is
in the default suite; the full benchmark is a command, not a test.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from loadtests.bench import Bench
from onhand.settings import Settings


def test_quick_bench_keeps_every_invariant(tmp_path: Path) -> None:
    # Given servers from the environment (CI) or embedded ones started by the bench
    settings = msgspec.structs.replace(Settings.from_env(), data_dir=tmp_path / "data")

    # When the quick benchmark runs every scenario on both engines
    bench = Bench(settings, tmp_path / "report", quick=True)
    code = bench.execute()

    # Then nothing was oversold, every unit is accounted for, every 2xx order
    # is stored exactly once, every response passed its checks, no 5xx
    run = bench.run
    assert run.breaches == [], run.breaches
    assert code == 0
    ran = {(o.scenario, o.engine) for o in run.outcomes if not o.skipped}
    assert {("flash", "onhand"), ("flash", "baseline"), ("wholesale", "onhand"), ("wholesale", "baseline"),
            ("reads", "onhand"), ("reads", "baseline")} <= ran
    for outcome in run.outcomes:
        if outcome.skipped:
            # only the webhook burst may be skipped, and only for a missing endpoint
            assert outcome.scenario == "webhooks", outcome.skipped
            continue
        assert outcome.invariants is None or outcome.invariants.passed
        assert outcome.summary(
            {"flash": "flash:", "webhooks": "webhook:", "wholesale": "", "reads": "read:"}[outcome.scenario]
        )["requests"] > 0
    flash = next(o for o in run.outcomes if o.scenario == "flash" and o.engine == "onhand")
    assert len(flash.record["orders"]) == bench.sizes.flash_units  # exactly the units on hand were sold
    assert (tmp_path / "report" / "report.md").exists()
