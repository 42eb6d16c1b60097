"""A whole onhand for a test: the real app served over real HTTP (uvicorn in a
thread of this process), real Dramatiq worker threads draining into a real
PostgreSQL, a real Redis."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import socket
import sys
import threading
from pathlib import Path

import httpx
import msgspec
import uvicorn
from redis import Redis
from sqlalchemy import create_engine

from api.app import create_app
from engine.keys import Keys
from onhand.settings import Settings
from persistence.rebuild import Rebuilder
from onhand.redis_clients import sync_client
from tests.servers import new_merchant
from workers.brokers import delete_queues
from workers.runtime import WorkerProcess

ADMIN_KEY = "test-admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


class AdminCalls:
    """The admin's API calls of a synchronous stack (one with ``self.http``)."""

    http: httpx.Client

    def api(self, method: str, path: str, body=None, expect: int | None = None):
        r = self.http.request(method, path, json=body)
        if expect is not None:
            assert r.status_code == expect, (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    def sku(self, sku: str, units: int, **details) -> None:
        """A SKU with ``details``, and ``units`` received."""
        self.api("PUT", f"/v1/skus/{sku}", details, expect=200)
        if units:
            self.api("POST", "/v1/inventory/receipts",
                     {"reference": f"ASN-{sku}-{time.monotonic_ns()}",
                      "lines": [{"sku": sku, "quantity": units}]}, expect=201)


@dataclass
class Stack:
    settings: Settings
    client: httpx.AsyncClient
    worker: WorkerProcess | None
    redis: Redis
    keys: Keys
    #: Headers of every request: the home merchant's admin key, or another
    #: merchant's (:meth:`as_merchant`).
    headers: dict = field(default_factory=lambda: dict(ADMIN))
    #: The app being served (None when it runs in its own process).
    app: object = None

    def as_merchant(self, merchant: str, admin_key: str) -> Stack:
        """The same stack seen by another merchant's admin: its key on every
        request, its outbox in :meth:`drained`."""
        return replace(self, keys=Keys(merchant), headers={"Authorization": f"Bearer {admin_key}"})

    async def drained(self, timeout_s: float = 30.0) -> None:
        """Waits until the outbox is empty (every change is in PostgreSQL)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.redis.xlen(self.keys.outbox) == 0:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"outbox still holds {self.redis.xlen(self.keys.outbox)} entries")

    async def post(self, path: str, body=None, headers=None, **kw):
        """POST as the admin; ``body`` None sends no body at all."""
        if body is None:
            return await self.client.post(path, headers={**self.headers, **(headers or {})}, **kw)
        return await self.client.post(path, content=msgspec.json.encode(body),
                                      headers={**self.headers, "content-type": "application/json",
                                               **(headers or {})}, **kw)

    async def put(self, path: str, body, headers=None):
        return await self.client.put(path, content=msgspec.json.encode(body),
                                     headers={**self.headers, "content-type": "application/json",
                                              **(headers or {})})

    async def get(self, path: str, headers=None, **kw):
        return await self.client.get(path, headers={**self.headers, **(headers or {})}, **kw)


def stack_settings(redis_url: str, database_url: str, **overrides) -> Settings:
    base = dict(redis_url=redis_url, database_url=database_url, merchant=new_merchant(),
                admin_key=ADMIN_KEY, allow_unsafe_redis=True, rate_limit_wholesale=0.0)
    base.update(overrides)
    return Settings(**base)


def initialise(settings: Settings) -> None:
    """What `serve` does before serving: an empty Redis is rebuilt (here: from
    an empty database), which writes the epoch."""
    redis = sync_client(settings.redis_url)
    engine = create_engine(settings.database_url)
    try:
        Rebuilder(redis, engine, Keys(settings.merchant)).run()
    finally:
        engine.dispose()
        redis.close()


def cleanup(settings: Settings) -> None:
    """Deletes the test's keys and its broker queues (RabbitMQ)."""
    delete_queues(settings)
    redis = sync_client(settings.redis_url)
    try:
        for pattern in (Keys(settings.merchant).pattern(), f"onhand-{settings.merchant}*"):
            keys = list(redis.scan_iter(match=pattern, count=2000))
            for i in range(0, len(keys), 1000):
                redis.unlink(*keys[i:i + 1000])
    finally:
        redis.close()


class HttpServer:
    """An ASGI app on a real port, served by uvicorn in a background thread."""

    def __init__(self, app):
        # IPPROTO_TCP so asyncio sets TCP_NODELAY (else small responses wait ~40 ms)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning",
                                                    loop="asyncio", timeout_keep_alive=30))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "HttpServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


class ApiProcess:
    """The API in its own process (granian), for tests whose client load
    would otherwise compete with the server for this process's GIL."""

    def __init__(self, settings: Settings, log_path):
        from tests.procs import Proc, env_for, free_port

        self.port = free_port()
        self.proc = Proc([sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host",
                          "127.0.0.1", "--port", str(self.port), "--workers", "1", "--loop", "uvloop",
                          "--log-level", "warning", "api.app:create_default_app"],
                         env_for(settings), log_path)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ApiProcess":
        from tests.procs import wait_ready

        self.proc.start()
        wait_ready(self.base_url, proc=self.proc)
        return self

    def stop(self) -> None:
        self.proc.stop()


@asynccontextmanager
async def running_stack(redis_url: str, database_url: str, *, workers: bool = True,
                        api_process: bool = False, worker_threads: int = 6, **overrides):
    settings = stack_settings(redis_url, database_url, **overrides)
    initialise(settings)
    worker = None
    redis = sync_client(settings.redis_url)
    app = None
    if api_process:
        import tempfile

        http = ApiProcess(settings, Path(tempfile.mkdtemp()) / "api.log").start()
    else:
        app = create_app(settings)
        http = HttpServer(app).start()
    try:
        async with httpx.AsyncClient(base_url=http.base_url, timeout=60,
                                     limits=httpx.Limits(max_connections=200)) as client:
            if workers:
                worker = WorkerProcess(settings, threads=worker_threads)
                worker.start()
            try:
                yield Stack(settings, client, worker, redis, Keys(settings.merchant), app=app)
            finally:
                if worker is not None:
                    worker.stop()
    finally:
        http.stop()
        redis.close()
        cleanup(settings)
