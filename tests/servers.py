"""Where the test suite finds Redis and PostgreSQL.

ONHAND_REDIS_URL / ONHAND_DATABASE_URL when set (CI points them at the
machine's servers); otherwise embedded servers started once per test process.
Tests that kill, flush or reconfigure a server start their own with
:func:`own_dir` and onhand.embedded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path


def own_dir(name: str) -> Path:
    """A fresh directory for a server a test owns. World-traversable (0755),
    because PostgreSQL runs as an unprivileged user when the suite runs as root."""
    path = Path(tempfile.mkdtemp(prefix=f"onhand-{name}-"))
    path.chmod(0o755)
    return path


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def env_redis_url() -> str | None:
    return os.environ.get("ONHAND_REDIS_URL") or None


def env_database_url() -> str | None:
    return os.environ.get("ONHAND_DATABASE_URL") or None


def new_merchant() -> str:
    """Each test works under its own merchant prefix, so tests sharing one
    Redis never see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]
