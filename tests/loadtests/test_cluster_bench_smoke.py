"""The smoke of `onhand bench cluster --quick`: clusters of 1, 2 and 3
primaries each take reservations on every shard, and the report has a row
per shard. It checks that the benchmark runs and accounts, never how fast."""

from __future__ import annotations

from pathlib import Path

from loadtests.cluster_bench import MERCHANTS, main


def test_cluster_bench_runs_quick(tmp_path: Path, capsys) -> None:
    assert main(out=str(tmp_path / "report"), quick=True) == 0
    report = (tmp_path / "report" / "cluster.md").read_text()
    assert "`onhand bench cluster --quick`" in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and ":" in line.split("|")[4]]
    assert len(rows) == 1 + 2 + 3, report
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        merchants, reservations, fcalls = int(cells[4]), int(cells[5].replace(",", "")), int(cells[7].replace(",", ""))
        assert merchants in (MERCHANTS, MERCHANTS // 2, MERCHANTS // 3)
        # every reservation is one FCALL on its shard, nothing else ran there
        assert reservations > 0 and fcalls == reservations, line
    assert "primaries: starting the cluster" in capsys.readouterr().err
