"""The smoke of `onhand bench documents`: a small CSV and 850 imported beside
the same orders through the API, on a real `onhand serve`. It checks that
every order was placed, never how fast."""

from __future__ import annotations

from pathlib import Path

import msgspec

from loadtests.documents_bench import main
from onhand.settings import Settings


def test_documents_bench_runs_small(tmp_path: Path) -> None:
    settings = msgspec.structs.replace(Settings.from_env(), data_dir=tmp_path / "data")
    assert main(settings, lines=100, out=str(tmp_path / "report")) == 0
    report = (tmp_path / "report" / "documents.md").read_text()
    assert "| CSV import (`onhand import orders`) | 10 | 100 |" in report
    assert "| X12 850 import" in report and "| 1 | 40 |" in report
