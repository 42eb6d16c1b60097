"""What the Shopify end-to-end tests share: the emulator, and a whole onhand on
a real port (the emulator delivers webhooks over HTTP) with real Dramatiq
worker threads, Redis and PostgreSQL. Test modules import the fixtures."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import msgspec
import pytest
from redis import Redis
from sqlalchemy import create_engine, text

from api.app import create_app
from emulator import EmulatorServer
from engine.keys import Keys
from onhand.settings import Settings
from tests.harness import ADMIN, AdminCalls, ApiProcess, HttpServer, cleanup, initialise, stack_settings
from tests.procs import wait_for
from workers import runtime
from workers.outbox import Drainer
from workers.runtime import WorkerProcess

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"
#: Shopify retries over 4 hours; the tests' emulator retries fast.
FAST_RETRIES = [0.2] * 8


def shopify_env(settings: Settings) -> dict[str, str]:
    """The ONHAND_SHOPIFY_* variables that give a child process these settings."""
    env = {"ONHAND_SHOPIFY_SYNC": "1" if settings.shopify_sync_enabled else "0",
           "ONHAND_SHOPIFY_API_VERSION": settings.shopify_api_version}
    for name in ("shop", "access_token", "api_secret", "api_secret_previous", "api_url", "location_id"):
        value = getattr(settings, f"shopify_{name}")
        if value:
            env[f"ONHAND_SHOPIFY_{name.upper()}"] = value
    return env


class ShopifyApiProcess(ApiProcess):
    """The API in its own process (granian, as `serve` runs it), with the
    Shopify settings: for load, where the emulator and onhand would otherwise
    share this process's GIL."""

    def __init__(self, settings: Settings):
        self.log_dir = Path(tempfile.mkdtemp(prefix="onhand-api-"))
        super().__init__(settings, self.log_dir / "api.log")
        self.proc.env.update(shopify_env(settings))

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.log_dir, ignore_errors=True)


@dataclass
class ShopifyStack(AdminCalls):
    settings: Settings
    emu: EmulatorServer
    app: HttpServer | ShopifyApiProcess
    http: httpx.Client
    redis: Redis
    keys: Keys
    worker: WorkerProcess | None
    pg: Any

    # ---- onhand's API (api, sku: AdminCalls)
    def inventory(self, sku: str) -> dict:
        return self.api("GET", f"/v1/inventory/{sku}", expect=200)

    def order(self, order_id: str) -> dict:
        return self.api("GET", f"/v1/orders/{order_id}", expect=200)

    def shopify_orders(self) -> list[str]:
        return sorted(k.decode().rsplit(":", 1)[1]
                      for k in self.redis.scan_iter(match=f"{self.keys.prefix}:o:shp_*", count=5000))

    # ---- waiting
    def wait(self, what: Callable[[], Any], timeout_s: float = 20.0, message: str = "") -> Any:
        return wait_for(what, timeout_s, message)

    def stop_workers(self) -> None:
        """Stops the stack's own workers (drain, sync, fulfillment push), so a
        test that then runs one of their jobs by hand never races them."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def drained(self, timeout_s: float = 30.0) -> None:
        """Every change is in PostgreSQL (drained here when no worker runs)."""
        if self.worker is None:
            drainer = Drainer(self.redis, self.pg, self.keys, slot=900)
            deadline = time.monotonic() + timeout_s
            while self.redis.xlen(self.keys.outbox) and time.monotonic() < deadline:
                drainer.run_for(1.0)
        self.wait(lambda: self.redis.xlen(self.keys.outbox) == 0, timeout_s, "the outbox to drain")

    def sync_settled(self, timeout_s: float = 30.0) -> None:
        """Nothing left to push, nothing in flight, no recheck due."""
        p = self.keys.prefix

        def idle() -> bool:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.scard(self.keys.dirty)
                pipe.zcard(f"{p}:sync:inflight")
                pipe.zcard(f"{p}:sync:due")
                pipe.hlen(f"{p}:sync:wal")
                return sum(pipe.execute()) == 0

        self.wait(lambda: idle() and idle(), timeout_s, "the sync to settle")

    def shop_available(self, sku: str) -> int:
        return self.emu.client.inventory(sku)["available"]


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer(retry_schedule_s=FAST_RETRIES, webhook_timeout_s=5.0).start()
    try:
        yield server
    finally:
        server.stop()


def shopify_settings(emu: EmulatorServer, redis_url: str, database_url: str, **overrides) -> Settings:
    base = dict(shopify_shop=emu.shop_domain, shopify_access_token=emu.access_token,
                shopify_api_secret=emu.api_secret, shopify_api_url=emu.base_url,
                shopify_api_version="2026-04")
    base.update(overrides)
    return stack_settings(redis_url, database_url, **base)


@contextmanager
def shopify_stack(emu: EmulatorServer, redis_url: str, database_url: str, *, workers: bool = True,
                  app_process: bool = False, **overrides) -> Iterator[ShopifyStack]:
    """A whole onhand pointed at the emulator (and the emulator at it); the
    app in a thread, or with ``app_process`` in its own process."""
    settings = shopify_settings(emu, redis_url, database_url, **overrides)
    initialise(settings)
    app = (ShopifyApiProcess(settings) if app_process else HttpServer(create_app(settings))).start()
    redis = Redis.from_url(redis_url)
    pg = create_engine(database_url)
    worker = None
    patches = ExitStack()
    # short drain slices: the workers stop within a second instead of five
    patches.enter_context(mock.patch.object(runtime, "DRAIN_SLICE_S", 1.0))
    client = emu.client
    client.reset()
    client.webhook_config(url=f"{app.base_url}/webhooks/shopify", retry_schedule_s=FAST_RETRIES,
                          timeout_s=5.0, api_version="2026-04")
    client.bucket(maximum_available=1000, restore_rate=50, currently_available=1000,
                  single_query_max=1000)
    try:
        if workers:
            worker = WorkerProcess(settings, threads=6)
            worker.start()
        with httpx.Client(base_url=app.base_url, headers=ADMIN, timeout=30) as http:
            stack = ShopifyStack(settings, emu, app, http, redis, Keys(settings.merchant), worker, pg)
            try:
                yield stack
            finally:
                worker = stack.worker  # None when the test stopped it
    finally:
        client.webhook_mode("hold")  # nothing more reaches this stack
        client.drain(2)
        if worker is not None:
            worker.stop()
        patches.close()
        app.stop()
        pg.dispose()
        redis.close()
        cleanup(settings)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sync_log(stack: ShopifyStack) -> dict[tuple[str, str], dict]:
    """(idempotency key, sku) -> what the push read, for every write
    (lua/shopify_sync_commit.lua's log)."""
    out = {}
    for _, fields in stack.redis.xrange(f"{stack.keys.prefix}:sync:log"):
        for e in msgspec.json.decode(fields[b"e"]):
            if e.get("set"):
                out[(e["key"], e["sku"])] = e
    return out


def pg_count(stack: ShopifyStack, table: str) -> int:
    with stack.pg.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar())


def test_the_stack_serves_on_a_real_port(emulator, redis_url, database_url):
    with shopify_stack(emulator, redis_url, database_url, workers=False) as stack:
        assert httpx.get(f"{stack.app.base_url}/healthz").json() == {"status": "ok"}
