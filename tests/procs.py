"""Real onhand processes for durability tests (kill -9, restarts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from onhand.settings import Settings


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONHAND_")}
    env.update({
        "ONHAND_REDIS_URL": settings.redis_url or "",
        "ONHAND_DATABASE_URL": settings.database_url or "",
        "ONHAND_MERCHANT": settings.merchant,
        "ONHAND_ADMIN_KEY": settings.admin_key or "",
        "ONHAND_ALLOW_UNSAFE_REDIS": "1" if settings.allow_unsafe_redis else "0",
        "ONHAND_RATE_LIMIT_WHOLESALE": str(settings.rate_limit_wholesale),
        "ONHAND_DATA_DIR": str(settings.data_dir),
        "ONHAND_BROKER_URL": settings.broker_url or "",
        "ONHAND_BROKER_NAMESPACE": settings.broker_namespace or "",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.args, self.env, self.log = args, env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> "Proc":
        out = open(self.log, "ab")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=out,
                                        start_new_session=True)
        out.close()
        return self

    def kill9(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout_s: float = 20) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def worker(settings: Settings, log: Path, threads: int = 3) -> Proc:
    return Proc([sys.executable, "-m", "onhand", "worker", "--threads", str(threads)], env_for(settings), log)


def serve(settings: Settings, log: Path, port: int, **extra_env: str) -> Proc:
    return Proc([sys.executable, "-m", "onhand", "serve", "--port", str(port)],
                env_for(settings, **extra_env), log)


def wait_ready(base_url: str, timeout_s: float = 60, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"process exited:\n{proc.output()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base_url} not ready" + (f":\n{proc.output()[-3000:]}" if proc else ""))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, timeout_s: float = 20.0, message: str = ""):
    """Polls ``what()`` every 20 ms until it returns something true (returned)
    or ``timeout_s`` passes (AssertionError naming ``message``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message or what}")
        time.sleep(0.02)
