"""`onhand serve`: the whole service in one command.

Starts the embedded servers when no URLs are given (from the main thread,
with a parent-death signal), refuses an unsafe Redis, runs the migrations,
rebuilds Redis from PostgreSQL when it came back empty, then runs the API
processes (granian) and the worker processes, restarts any that die, checks
the Redis epoch every second (rebuilding when Redis was emptied under it) and
its durability settings every minute, and stops everything on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from redis import Redis

from engine.keys import Keys
from onhand.embedded import _child_setup
from onhand.redis_clients import sync_client
from onhand.servers import UnsafeRedis, check_redis_safety, servers
from onhand.settings import Settings

log = logging.getLogger("onhand.serve")

#: How often the supervisor looks at children and the epoch, seconds.
TICK_S = 1.0
#: How often the live Redis's durability settings are checked again, seconds.
SAFETY_CHECK_S = 60.0
#: How often the merchants whose state is watched are read again, seconds.
MERCHANTS_REFRESH_S = 10.0
#: The ASGI app factory the API processes serve (module:function).
DEFAULT_APP = "api.app:create_default_app"


@dataclass
class Child:
    name: str
    args: list[str]
    process: subprocess.Popen | None = None
    restarts: int = 0


def child_env(settings: Settings, metrics_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env["ONHAND_REDIS_URL"] = settings.redis_url or ""
    env["ONHAND_DATABASE_URL"] = settings.database_url or ""
    env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    if settings.ui_secret:
        env["ONHAND_UI_SECRET"] = settings.ui_secret
    return env


def ui_secret(settings: Settings) -> str:
    """The staff UI's CSRF signing secret: ONHAND_UI_SECRET, else one kept in
    the data dir (made on first start, mode 0600), so every API process and
    every restart signs alike."""
    if settings.ui_secret:
        return settings.ui_secret
    import secrets

    path = settings.data_dir / "ui-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


def prepare(settings: Settings) -> None:
    """Checks Redis, migrates PostgreSQL and rebuilds Redis if needed."""
    from persistence.db import make_engine, migrate
    from persistence.rebuild import rebuild_where_needed

    redis = sync_client(settings.redis_url)
    try:
        why = check_redis_safety(redis, settings)
        if why:
            if not settings.allow_unsafe_redis:
                raise UnsafeRedis(why)
            log.warning("ONHAND_ALLOW_UNSAFE_REDIS=1: %s", why)
        tune_redis(redis)
        log.info("migrating PostgreSQL")
        migrate(settings.database_url, merchant=settings.merchant)
        engine = make_engine(settings.database_url)
        try:
            for merchant, report in rebuild_where_needed(
                    redis, engine, settings.merchant,
                    closed_order_retention_ms=settings.closed_order_retention_s * 1000, progress=_log_progress):
                log.info("rebuild of %s done in %.1f s (%d SKUs, %d orders)", merchant, report.seconds,
                         report.skus, report.orders)
        finally:
            engine.dispose()
    finally:
        redis.close()


def tune_redis(redis: Redis) -> None:
    """Keeps order hashes in Redis's compact encoding (see onhand/embedded.py);
    a managed Redis that refuses CONFIG SET only costs memory."""
    from redis.cluster import RedisCluster

    from onhand.embedded import HASH_MAX_LISTPACK_VALUE

    if isinstance(redis, RedisCluster):
        for node in redis.get_nodes():
            tune_redis(redis.get_redis_connection(node))
        return
    try:
        current = int(redis.config_get("hash-max-listpack-value").get("hash-max-listpack-value", 0))
        if current < HASH_MAX_LISTPACK_VALUE:
            redis.config_set("hash-max-listpack-value", HASH_MAX_LISTPACK_VALUE)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not raise hash-max-listpack-value (%s): orders will use more memory", exc)


def _log_progress(stage: str, done: int, total: int) -> None:
    log.info("rebuild: %s %d/%d", stage, done, total)


class Supervisor:
    def __init__(self, settings: Settings, host: str, port: int, api_processes: int, worker_processes: int,
                 app: str = DEFAULT_APP):
        self.settings = settings
        self.stop_event = threading.Event()
        self._merchant_ids = [settings.merchant]
        self._merchants_at = float("-inf")
        self.metrics_dir = str(settings.data_dir / "metrics")
        granian = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
                   "--host", host, "--port", str(port), "--workers", str(api_processes),
                   "--loop", "uvloop", "--log-level", "warning", app]
        self.children = [Child("api", granian)]
        for i in range(worker_processes):
            self.children.append(Child(f"worker-{i}", [sys.executable, "-m", "onhand", "worker"]))

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.args, env=child_env(self.settings, self.metrics_dir),
            preexec_fn=_child_setup(os.getpid(), None, None, signal.SIGTERM),
        )
        log.info("started %s (pid %d)", child.name, child.process.pid)

    def run(self) -> None:
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        os.makedirs(self.metrics_dir, exist_ok=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        for child in self.children:
            self._start(child)
        redis = sync_client(self.settings.redis_url)
        last_safety = time.monotonic()
        try:
            while not self.stop_event.wait(TICK_S):
                for child in self.children:
                    if child.process and child.process.poll() is not None and not self.stop_event.is_set():
                        log.error("%s exited with %s; restarting", child.name, child.process.returncode)
                        child.restarts += 1
                        self._start(child)
                self._watch_epochs(redis)
                if time.monotonic() - last_safety > SAFETY_CHECK_S:
                    last_safety = time.monotonic()
                    self._check_safety(redis)
        finally:
            redis.close()
            self.stop()

    def _watch_epochs(self, redis: Redis) -> None:
        try:
            merchants = self._merchants()
            with redis.pipeline(transaction=False) as pipe:
                for merchant in merchants:
                    pipe.exists(Keys(merchant).epoch)
                lost = [m for m, there in zip(merchants, pipe.execute(), strict=True) if not there]
        except Exception as exc:  # noqa: BLE001 - Redis restarting: look again next tick
            log.warning("Redis unreachable: %r", exc)
            return
        if not lost:
            return
        log.error("Redis lost the state of %s (no epoch): rebuilding from PostgreSQL; their orders get 503 "
                  "meanwhile", ", ".join(lost))
        try:
            prepare(self.settings)
        except Exception as exc:  # noqa: BLE001 - try again next tick
            log.error("rebuild failed: %r", exc)

    def _merchants(self) -> list[str]:
        """The merchants whose epoch is watched, read from PostgreSQL every
        MERCHANTS_REFRESH_S (the last list while PostgreSQL is down)."""
        from persistence import merchants
        from persistence.db import make_engine

        now = time.monotonic()
        if now - self._merchants_at >= MERCHANTS_REFRESH_S:
            self._merchants_at = now
            engine = make_engine(self.settings.database_url, pool_size=1)
            try:
                with engine.connect() as conn:
                    self._merchant_ids = merchants.ids(conn, self.settings.merchant)
            except Exception as exc:  # noqa: BLE001 - watch the merchants known
                log.warning("cannot read the merchants from PostgreSQL: %r", exc)
            finally:
                engine.dispose()
        return self._merchant_ids

    def _check_safety(self, redis: Redis) -> None:
        why = check_redis_safety(redis, self.settings)
        if why and not self.settings.allow_unsafe_redis:
            log.error("ALARM %s", why)

    def stop(self) -> None:
        for child in self.children:
            if child.process and child.process.poll() is None:
                child.process.terminate()
        for child in self.children:
            if child.process:
                try:
                    child.process.wait(15)
                except subprocess.TimeoutExpired:
                    child.process.kill()
        log.info("stopped")


def serve(settings: Settings, *, host: str, port: int, api_processes: int, worker_processes: int,
          app: str = DEFAULT_APP) -> int:
    from workers.brokers import check

    if worker_processes:
        check(settings)  # before any server starts: the workers could not run (BrokerRefused)
    with servers(settings) as resolved:
        import msgspec

        resolved = msgspec.structs.replace(resolved, ui_secret=ui_secret(resolved))
        try:
            prepare(resolved)
        except UnsafeRedis as exc:
            log.error("refusing to start: %s", exc)
            return 2
        print(f"onhand serving on http://{host}:{port} (staff UI: http://{host}:{port}/ui/login, "
              f"API docs: http://{host}:{port}/schema)", flush=True)
        Supervisor(resolved, host, port, api_processes, worker_processes, app).run()
    return 0
