"""Measuring instruments: wrk for maximum throughput, the open-loop
generator for latency at a fixed rate, CPU per process group over a window,
PostgreSQL wait events, Redis per-command CPU, and py-spy profiles.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
from redis import Redis

from loadtests import libpq
from loadtests.stack import ADMIN_KEY, Servers, Service, cpu_seconds

WRK_LUA = Path(__file__).with_name("wrk") / "orders.lua"
#: Connections wrk keeps open (as in the performance facts).
WRK_CONNECTIONS = 64
#: SKUs of the spread-SKU runs.
SPREAD_SKUS = 2000


def _units_ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


@dataclass
class WrkResult:
    rps: float
    requests: int
    statuses: dict[str, int]
    latency_ms: dict[str, float]
    cpu_s: float
    seconds: float
    errors: str = ""

    @property
    def all_201(self) -> bool:
        return set(self.statuses) == {"201"} and not self.errors


def run_wrk(url: str, sku: str, spread: int, seconds: int, workdir: Path,
            connections: int = WRK_CONNECTIONS) -> WrkResult:
    """POSTs one-unit DTC orders as fast as ``connections`` closed-loop
    connections allow (one wrk thread; its CPU is reported)."""
    return wrk(["-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(WRK_LUA), url,
                "--", ADMIN_KEY, sku, str(spread)], workdir)


def wrk(options: list[str], workdir: Path) -> WrkResult:
    """Runs wrk with ``options`` (its script must print a ``statuses`` line)."""
    args = ["wrk", *options]
    out_path = workdir / "wrk.out"
    with open(out_path, "wb") as out:
        start = time.monotonic()
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        elapsed = time.monotonic() - start
    text = out_path.read_text(errors="replace")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    lat = {f"p{m.group(1)}": _units_ms(m.group(2))
           for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.MULTILINE)}
    statuses = dict(kv.split("=") for kv in (re.search(r"^statuses ?(.*)$", text, re.MULTILINE).group(1).split()))
    errors = "; ".join(re.findall(r"(Socket errors:.*|Non-2xx or 3xx responses:.*)", text))
    return WrkResult(rps, requests, {k: int(v) for k, v in statuses.items()}, lat,
                     usage.ru_utime + usage.ru_stime, elapsed, errors)


def run_openloop(url: str, skus: list[str], rate: float, seconds: float, workdir: Path) -> dict:
    out = workdir / f"openloop-{int(rate)}.json"
    args = [sys.executable, "-m", "loadtests.openloop", "--url", url, "--key", ADMIN_KEY,
            "--rate", str(rate), "--duration", str(seconds), "--out", str(out)]
    for sku in skus:
        args += ["--sku", sku]
    with open(workdir / f"openloop-{int(rate)}.log", "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log)
        _, _, usage = os.wait4(proc.pid, 0)  # rusage: the generator's own CPU
        proc.returncode = 0
    result = json.loads(out.read_text())
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


# ---------------------------------------------------------------- CPU per process group


class CpuWindow:
    """CPU seconds used by each process group between start() and stop(),
    as a share of one core; "machine" is the whole box (2 cores = 200%)."""

    def __init__(self, service: Service, servers: Servers, redis: Redis):
        self.service = service
        self.servers = servers
        self.redis = redis

    def _redis_cpu(self) -> float:
        info = self.redis.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def _read(self) -> dict[str, float]:
        t = psutil.cpu_times()
        return {
            "api": cpu_seconds(self.service.api_pids()),
            "worker": cpu_seconds(self.service.worker_pids()),
            "redis": self._redis_cpu(),
            "postgres": cpu_seconds(self.servers.pids("postgres")) if self.servers.pids("postgres") else float("nan"),
            "machine": t.user + t.system + t.nice + getattr(t, "irq", 0) + getattr(t, "softirq", 0),
        }

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.c0 = self._read()

    def stop(self, **extra_cpu_s: float) -> dict[str, float]:
        elapsed = time.monotonic() - self.t0
        c1 = self._read()
        share = {k: 100 * (c1[k] - self.c0[k]) / elapsed for k in c1}
        for k, v in extra_cpu_s.items():
            share[k] = 100 * v / elapsed
        known = sum(v for k, v in share.items() if k != "machine" and not math.isnan(v))
        share["other"] = max(0.0, share["machine"] - known)
        return share


# ---------------------------------------------------------------- PostgreSQL wait events


class PgWaits(threading.Thread):
    """Samples what the database's sessions are doing every 20 ms: running,
    waiting for a lock, for the WAL to reach disk, or for the client (an open
    transaction waiting on the application)."""

    def __init__(self, database_url: str):
        super().__init__(name="pg-waits", daemon=True)
        self.url = libpq(database_url)
        self.counts: Counter = Counter()
        self.samples = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop_event.wait(0.02):
                rows = conn.execute(
                    "SELECT state, coalesce(wait_event_type, 'CPU'), coalesce(wait_event, '') "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
                    "AND state <> 'idle'").fetchall()
                self.samples += 1
                for state, kind, event in rows:
                    label = "idle in transaction (waiting for the app)" if state.startswith("idle in") \
                        else f"{kind}:{event}" if kind != "CPU" else "running (CPU)"
                    self.counts[label] += 1

    def stop(self) -> dict[str, float]:
        """Average number of sessions in each state."""
        self.stop_event.set()
        self.join(5)
        return {k: v / max(1, self.samples) for k, v in self.counts.most_common(8)}


def redis_commandstats(redis: Redis) -> dict[str, dict]:
    return {k.removeprefix("cmdstat_"): v for k, v in redis.info("commandstats").items()}


#: The commands that run onhand's Lua (scripts or functions).
SCRIPT_COMMANDS = ("evalsha", "eval", "fcall", "fcall_ro")


def redis_us_per_call(before: dict, after: dict) -> tuple[int, float]:
    """Script calls between two INFO commandstats, and Redis's CPU per call (us)."""
    calls = usec = 0
    for command in SCRIPT_COMMANDS:
        b, a = before.get(command, {}), after.get(command, {})
        calls += int(a.get("calls", 0)) - int(b.get("calls", 0))
        usec += int(a.get("usec", 0)) - int(b.get("usec", 0))
    return calls, (usec / calls if calls else 0.0)


# ---------------------------------------------------------------- profiles


@dataclass
class Profile:
    samples: int = 0
    busy: float = 0.0
    top_self: list[tuple[str, float]] = field(default_factory=list)
    top_inclusive: list[tuple[str, float]] = field(default_factory=list)
    layers: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""


#: Frames of the server itself (process start, granian's entry), left out of the inclusive ranking.
_SERVER_FRAMES = ("granian/", "click/", "multiprocessing/", "runpy", "<module>", "threading.py")
_LAYERS = (("loadtests/baseline", "baseline engine (loadtests/baseline.py)"), ("psycopg", "psycopg (PostgreSQL driver)"),
           ("/api/", "onhand api/"), ("/engine/", "onhand engine/"), ("litestar", "Litestar (framework)"),
           ("redis/", "redis-py (client)"), ("prometheus_client", "prometheus_client (metrics)"),
           ("msgspec", "msgspec"), ("granian", "native code under granian's loop frame (uvloop's I/O and scheduling, granian's HTTP)"),
           ("asyncio", "asyncio / uvloop"))


def _api_files() -> set[str]:
    import importlib.util

    spec = importlib.util.find_spec("api.app")
    return {p.name for p in Path(spec.origin).parent.glob("*.py")} if spec and spec.origin else set()


def _layer(frame: str, api_files: set[str]) -> str:
    where = frame.rpartition(" (")[2]
    if "/" not in where and where.split(":")[0] in api_files:
        return "onhand api/"  # py-spy names the app's own files without their directory
    for needle, name in _LAYERS:
        if needle in frame:
            return name
    return "other (stdlib, glue)"


def py_spy(pid: int, seconds: int, out: Path, rate_hz: int = 100) -> Profile:
    """Samples the API process's event-loop thread with py-spy and ranks
    where its time goes."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        return Profile(error="py-spy is not installed (pip install py-spy)")
    proc = subprocess.run([spy, "record", "-p", str(pid), "-d", str(seconds), "-r", str(rate_hz),
                           "--threads", "--nonblocking", "-f", "raw", "-o", str(out)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.exists():
        return Profile(error=f"py-spy failed: {proc.stderr.strip()[-300:]}")
    return analyse(out, seconds * rate_hz)


def analyse(raw: Path, possible: int) -> Profile:
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            stacks.append((stack.split(";"), int(n)))
    by_thread: Counter = Counter()
    for frames, n in stacks:
        if any("Litestar.__call__" in f for f in frames):
            by_thread[frames[0]] += n
    if not by_thread:
        return Profile(error="no samples of the app's event loop")
    loop_thread = by_thread.most_common(1)[0][0]
    mine = [(frames[1:], n) for frames, n in stacks if frames[0] == loop_thread and len(frames) > 1]
    total = sum(n for _, n in mine)
    self_time: Counter = Counter()
    inclusive: Counter = Counter()
    layers: Counter = Counter()
    api_files = _api_files()
    for frames, n in mine:
        self_time[frames[-1]] += n
        layers[_layer(frames[-1], api_files)] += n
        for f in set(frames):
            inclusive[f] += n
    top_incl = [(f, 100 * n / total) for f, n in inclusive.most_common()
                if not any(s in f for s in _SERVER_FRAMES)][:15]
    return Profile(samples=total, busy=min(1.0, total / max(1, possible)),
                   top_self=[(f, 100 * n / total) for f, n in self_time.most_common(15)],
                   top_inclusive=top_incl,
                   layers=[(k, 100 * n / total) for k, n in layers.most_common()])
