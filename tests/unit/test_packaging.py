"""What a plain `pip install .` gets: the product's packages only, importing
nothing from the load tests, the Shopify emulator or the test suite (those run
from a source checkout). .ci/run also installs the package with no extras into
a fresh venv and starts `onhand serve` and `onhand worker` from it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("onhand", "engine", "api", "persistence", "workers", "lua", "ui")
NOT_PRODUCT = ("loadtests", "emulator", "tests")


def test_the_wheel_holds_the_product_packages_only():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not [p for p in include if p.rstrip("*") in NOT_PRODUCT]
    assert all(f"{p}*" in include for p in PRODUCT)
    deps = " ".join(config["project"]["dependencies"])
    assert "sqlalchemy[asyncio]" in deps  # greenlet: SQLAlchemy 2.1 no longer pulls it in


def test_the_product_imports_nothing_from_the_load_tests_or_the_emulator():
    """Every module of the product, imported from outside the checkout (so
    loadtests/ and emulator/ cannot be found), and the app built."""
    code = f"""
import importlib, pkgutil, sys
for name in {PRODUCT!r}:
    pkg = importlib.import_module(name)
    for mod in pkgutil.walk_packages(pkg.__path__, name + "."):
        if ".migrations" not in mod.name and not mod.name.endswith("__main__"):
            importlib.import_module(mod.name)
from api.app import create_app
create_app()
bad = sorted(m for m in sys.modules if m.split(".")[0] in {NOT_PRODUCT!r})
assert not bad, bad
print("ok")
"""
    done = subprocess.run([sys.executable, "-I", "-c", code], cwd="/", capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_no_product_module_names_the_load_tests_or_the_emulator_even_lazily():
    """Imports inside functions too. The one exception is `onhand bench`,
    which runs the benchmarks from a source checkout and says so otherwise."""
    import ast

    found = []
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                for name in names:
                    if name.split(".")[0] in NOT_PRODUCT:
                        found.append((str(path.relative_to(ROOT)), name))
    allowed = {(path, name) for path, name in found
               if path == "onhand/cli.py" and name.startswith("loadtests.")}  # `onhand bench`
    assert set(found) <= allowed, set(found) - allowed
