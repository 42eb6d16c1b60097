"""What a benchmark run stands on: the servers (embedded or given), one
`onhand serve` per engine, and a sampler of process memory, CPU, Redis
memory and the outbox backlog.

Both engines share one Valkey and one PostgreSQL server (so they meet the
same disk and the same fsync), each under its own merchant prefix in Redis
and its own database in PostgreSQL (PostgreSQL is not merchant-scoped, and
a rebuild of one merchant must not read the other's rows).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from engine.keys import Keys
from loadtests import libpq
from onhand.embedded import EmbeddedServer, _child_setup, start_postgres, start_valkey
from onhand.settings import Settings

#: The admin key every bench stack is started with (throwaway servers only).
ADMIN_KEY = "bench-admin-key-0123456789abcdef"
#: Shared secret of the Shopify emulator and onhand's webhook endpoint.
SHOPIFY_SECRET = "bench-shopify-secret"
SHOPIFY_SHOP = "bench-shop.myshopify.com"
#: Embedded Valkey's memory limit for a bench, bytes: every order stays in
#: Redis while open, and a full run leaves a few hundred thousand open.
BENCH_REDIS_MAXMEMORY = 4 * 1024**3
#: How long a service may take to answer /readyz, seconds.
READY_TIMEOUT_S = 60.0
#: Sampling period of the process/Redis sampler, seconds.
SAMPLE_PERIOD_S = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Servers:
    """Where the two engines keep their data."""

    redis_url: str
    onhand_database_url: str
    baseline_database_url: str
    embedded: list[EmbeddedServer] = field(default_factory=list)
    #: Durability as found: Redis appendfsync, PostgreSQL synchronous_commit and fsync.
    durability: dict[str, str] = field(default_factory=dict)

    def pids(self, name: str) -> list[int]:
        """PIDs of an embedded server ("valkey" or "postgres") with its children."""
        out = []
        for server in self.embedded:
            if server.name == name and server.alive():
                proc = psutil.Process(server.pid)
                out += [proc.pid] + [c.pid for c in proc.children(recursive=True)]
        return out


def _create_database(server_url: str, name: str) -> str:
    url = make_url(server_url)
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_database(server_url: str, name: str) -> None:
    admin = make_url(server_url).set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _durability(redis_url: str, database_url: str) -> dict[str, str]:
    redis = Redis.from_url(redis_url)
    try:
        conf = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                for k, v in {**redis.config_get("appendonly"), **redis.config_get("appendfsync")}.items()}
        version = redis.info("server").get("valkey_version") or redis.info("server").get("redis_version")
    finally:
        redis.close()
    with psycopg.connect(libpq(database_url)) as conn:
        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
        fsync = conn.execute("SHOW fsync").fetchone()[0]
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    return {"redis": f"appendonly={conf.get('appendonly')} appendfsync={conf.get('appendfsync')}",
            "redis_version": str(version), "postgres": f"synchronous_commit={sync} fsync={fsync}",
            "postgres_version": pg_version}


@contextmanager
def servers(settings: Settings, workdir: Path):
    """Given servers (ONHAND_REDIS_URL / ONHAND_DATABASE_URL: two fresh
    databases are created there and dropped after), or embedded ones in
    ``workdir`` with production durability: Valkey with AOF and appendfsync
    always, PostgreSQL with fsync and synchronous_commit on."""
    embedded: list[EmbeddedServer] = []
    tag = uuid.uuid4().hex[:8]
    created: list[tuple[str, str]] = []
    try:
        redis_url = settings.redis_url
        if redis_url is None:
            embedded.append(start_valkey(workdir / "valkey", maxmemory_bytes=BENCH_REDIS_MAXMEMORY))
            redis_url = embedded[-1].url
        server_url = settings.database_url
        if server_url is None:
            embedded.append(start_postgres(workdir / "postgres", fsync=True))
            server_url = embedded[-1].url
        onhand_db = _create_database(server_url, f"bench_onhand_{tag}")
        created.append((server_url, f"bench_onhand_{tag}"))
        baseline_db = _create_database(server_url, f"bench_baseline_{tag}")
        created.append((server_url, f"bench_baseline_{tag}"))
        found = Servers(redis_url, onhand_db, baseline_db, embedded)
        found.durability = _durability(redis_url, onhand_db)
        yield found
    finally:
        for server_url, name in created:
            try:
                _drop_database(server_url, name)
            except psycopg.Error:
                pass
        for server in reversed(embedded):
            server.stop()


class Service:
    """One `onhand serve` (API processes plus worker processes) for one engine."""

    def __init__(self, engine: str, servers: Servers, workdir: Path, *, merchant: str,
                 api_processes: int = 1, worker_processes: int = 1, extra_env: dict | None = None):
        self.engine = engine
        self.servers = servers
        self.workdir = workdir
        self.merchant = merchant
        self.api_processes = api_processes
        self.worker_processes = worker_processes
        self.extra_env = extra_env or {}
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.keys = Keys(merchant)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return self.servers.onhand_database_url if self.engine == "onhand" else self.servers.baseline_database_url

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "ONHAND_REDIS_URL": self.servers.redis_url,
            "ONHAND_DATABASE_URL": self.database_url,
            "ONHAND_DATA_DIR": str(self.workdir / f"data-{self.engine}"),
            "ONHAND_MERCHANT": self.merchant,
            "ONHAND_ADMIN_KEY": ADMIN_KEY,
            "ONHAND_SHOPIFY_API_SECRET": SHOPIFY_SECRET,
            "ONHAND_SHOPIFY_SHOP": SHOPIFY_SHOP,
            "ONHAND_ALLOW_UNSAFE_REDIS": env.get("ONHAND_ALLOW_UNSAFE_REDIS", ""),
            **self.extra_env,
        })
        return env

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Starts `onhand serve` without waiting (from the main thread: the
        parent-death signal is tied to the forking thread)."""
        self.port = free_port()
        workers = self.worker_processes if self.engine == "onhand" else 0
        app = [] if self.engine == "onhand" else ["--app", "loadtests.baseline:create_baseline_app"]
        with open(self.workdir / f"serve-{self.engine}.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "onhand", "serve", "--port", str(self.port),
                 "--api-processes", str(self.api_processes), "--worker-processes", str(workers), *app],
                env=self.env(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                # dies with the bench, as onhand.serve's children do; forked from the main thread
                preexec_fn=_child_setup(os.getpid(), None, None, signal.SIGTERM),  # noqa: PLW1509
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"onhand serve ({self.engine}) exited with {self.process.returncode}; "
                                   f"see {self.workdir}/serve-{self.engine}.log")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200 and self.api_pids():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"onhand serve ({self.engine}) not ready after {READY_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def restart(self, api_processes: int) -> None:
        self.stop()
        self.api_processes = api_processes
        self.start()

    def _children(self) -> list[psutil.Process]:
        if not self.process or self.process.poll() is not None:
            return []
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def api_pids(self) -> list[int]:
        """The granian processes (its supervisor and the workers that serve)."""
        return [p.pid for p in self._children() if _cmdline_has(p, "granian")]

    def api_worker_pids(self) -> list[int]:
        """The granian processes that run the app (children of granian's own supervisor)."""
        pids = set(self.api_pids())
        out = []
        for pid in pids:
            try:
                if psutil.Process(pid).ppid() in pids:
                    out.append(pid)
            except psutil.NoSuchProcess:
                pass
        return out or list(pids)

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self._children() if _cmdline_has(p, "worker") and not _cmdline_has(p, "granian")]


def _cmdline_has(proc: psutil.Process, word: str) -> bool:
    try:
        return any(word in part for part in proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


# ---------------------------------------------------------------- sampling


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def outbox_state(redis: Redis, keys: Keys) -> tuple[int, float]:
    """(entries not yet drained, age of the oldest one in seconds). Drained
    entries are deleted, so the first entry left is the oldest waiting."""
    backlog = redis.xlen(keys.outbox)
    if not backlog:
        return 0, 0.0
    first = redis.xrange(keys.outbox, count=1)
    if not first:
        return 0, 0.0
    eid = first[0][0].decode()
    return backlog, max(0.0, time.time() - int(eid.split("-")[0]) / 1000)


@dataclass
class Sample:
    t: float
    api_rss: int
    worker_rss: int
    redis_used: int
    backlog: int
    lag_s: float


class Sampler(threading.Thread):
    """Samples, every SAMPLE_PERIOD_S: RSS of the API and worker processes,
    Redis used memory, and the onhand outbox's backlog and lag."""

    def __init__(self, redis_url: str):
        super().__init__(name="bench-sampler", daemon=True)
        self.redis = Redis.from_url(redis_url)
        self.services: list[Service] = []
        self.samples: dict[str, list[Sample]] = {}
        self.peaks: dict[str, dict[str, int]] = {}
        self.stop_event = threading.Event()
        self.lock = threading.Lock()

    def watch(self, service: Service) -> None:
        with self.lock:
            self.services.append(service)
            self.samples.setdefault(service.engine, [])
            self.peaks.setdefault(service.engine, {"api_rss": 0, "worker_rss": 0, "redis_used": 0})

    def reset_peaks(self, engine: str) -> None:
        with self.lock:
            self.peaks[engine] = {"api_rss": 0, "worker_rss": 0, "redis_used": 0}

    def run(self) -> None:
        while not self.stop_event.wait(SAMPLE_PERIOD_S):
            try:
                self.tick()
            except (psutil.Error, OSError, RedisError):
                continue  # a process restarting or Redis busy: sample again next tick

    def tick(self) -> None:
        now = time.time()
        used = int(self.redis.info("memory")["used_memory"])
        with self.lock:
            services = list(self.services)
        for service in services:
            if service.process is None or service.process.poll() is not None:
                continue
            backlog, lag = outbox_state(self.redis, service.keys) if service.engine == "onhand" else (0, 0.0)
            s = Sample(now, rss_bytes(service.api_pids()), rss_bytes(service.worker_pids()), used,
                       backlog, lag)
            with self.lock:
                self.samples[service.engine].append(s)
                peak = self.peaks[service.engine]
                peak["api_rss"] = max(peak["api_rss"], s.api_rss)
                peak["worker_rss"] = max(peak["worker_rss"], s.worker_rss)
                peak["redis_used"] = max(peak["redis_used"], used)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)
        self.redis.close()


def wait_drained(redis: Redis, keys: Keys, timeout_s: float) -> tuple[bool, float]:
    """Waits until the outbox is empty; returns (drained, seconds waited)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if redis.xlen(keys.outbox) == 0:
            return True, time.monotonic() - start
        time.sleep(0.1)
    return False, time.monotonic() - start


def forget_merchant(redis: Redis, merchant: str) -> None:
    """Deletes a bench merchant's keys and its Dramatiq queues from a shared Redis."""
    for pattern in (Keys(merchant).pattern(), f"onhand-{merchant}*"):
        batch = []
        for key in redis.scan_iter(match=pattern, count=2000):
            batch.append(key)
            if len(batch) >= 1000:
                redis.unlink(*batch)
                batch = []
        if batch:
            redis.unlink(*batch)


def unsafe_redis_env(found: "Servers") -> dict[str, str]:
    """What `onhand serve` needs to start on a given Redis without AOF
    `appendfsync always` (the shared test server): benchmarks only."""
    return {} if "appendfsync=always" in found.durability.get("redis", "") else {"ONHAND_ALLOW_UNSAFE_REDIS": "1"}


def scratch_dir() -> Path:
    """A scratch directory for servers and logs (PostgreSQL runs as an
    unprivileged user when the bench runs as root: it must be traversable)."""
    path = Path(tempfile.mkdtemp(prefix="onhand-bench-"))
    path.chmod(0o755)
    return path


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
