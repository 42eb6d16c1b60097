"""Schemathesis over the OpenAPI document, with all its checks: every status
documented, every response matching its schema, schema-valid requests
accepted, schema-violating ones refused, no server errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from api.app import create_app
from tests.harness import ADMIN_KEY, HttpServer, cleanup, initialise, stack_settings
from workers.runtime import WorkerProcess


def _schemathesis(redis_url: str, database_url: str, max_examples: int, minimum_cases: int,
                  tmp_path: Path) -> None:
    # webhook URLs are pointed at a local port (schemathesis_hooks.py)
    settings = stack_settings(redis_url, database_url, webhooks_allow_private=True)
    initialise(settings)
    server = HttpServer(create_app(settings)).start()
    worker = WorkerProcess(settings, threads=2)
    worker.start()
    try:
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
               "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{server.base_url}/schema/openapi.json",
             "--checks", "all", "--max-examples", str(max_examples), "--seed", "20261127",
             "-H", f"Authorization: Bearer {ADMIN_KEY}", "--request-timeout", "30",
             "--suppress-health-check", "all", "--report-dir", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=900,
        )
        out = run.stdout + run.stderr
        generated = re.search(r"(\d+) generated", out)
        assert run.returncode == 0, out[-6000:]
        assert generated and int(generated.group(1)) >= minimum_cases, out[-2000:]
        assert "failures" not in out.split("Test cases:")[-1].split("\n")[1], out[-2000:]
    finally:
        worker.stop()
        server.stop()
        cleanup(settings)


def test_schemathesis_all_checks(redis_url, database_url, tmp_path):
    _schemathesis(redis_url, database_url, max_examples=12, minimum_cases=1000, tmp_path=tmp_path)


@pytest.mark.soak
def test_schemathesis_all_checks_long(redis_url, database_url, tmp_path):
    _schemathesis(redis_url, database_url, max_examples=120, minimum_cases=5000, tmp_path=tmp_path)
