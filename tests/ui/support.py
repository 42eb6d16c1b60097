"""What the UI tests share: a whole onhand (real HTTP, real workers, Redis,
PostgreSQL) with a first admin from ONHAND_ADMIN_EMAIL/PASSWORD and an
operator, signing in, axe-core checks, keyboard-only typing, screenshots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import create_engine, text

from api.app import create_app
from engine.keys import Keys
from engine.store import Store
from onhand.settings import Settings
from tests.harness import ADMIN, AdminCalls, HttpServer, cleanup, initialise, stack_settings
from tests.procs import wait_for  # noqa: F401 - the UI tests import wait_for from here
from ui.users import create_user
from workers.runtime import WorkerProcess

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
OPERATOR_EMAIL = "operator@example.com"
OPERATOR_PASSWORD = "operator password 2026"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
#: Simulated typing speed of the keyboard tests: 8 keys per second.
KEY_DELAY_MS = 125


@dataclass
class UiStack(AdminCalls):
    settings: Settings
    base_url: str
    http: httpx.Client
    redis: Redis
    keys: Keys
    worker: WorkerProcess | None

    def orders_in_redis(self) -> list[str]:
        return sorted(k.decode().rsplit(":", 1)[1]
                      for k in self.redis.scan_iter(match=f"{self.keys.prefix}:o:ord_*", count=5000))

    def drained(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.redis.xlen(self.keys.outbox):
            assert time.monotonic() < deadline, "the outbox did not drain"
            time.sleep(0.05)


def add_user(settings: Settings, email: str, password: str, role: str, *, merchant: str | None = None) -> None:
    async def go():
        redis = AsyncRedis.from_url(settings.redis_url)
        try:
            store = Store(redis, merchant or settings.merchant)
            await create_user(store, email, password, role, actor="test", now_ms=int(time.time() * 1000))
        finally:
            await redis.aclose()

    # the Playwright sync API runs an event loop in this thread: use another
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result()


@contextmanager
def ui_stack(redis_url: str, database_url: str, *, workers: bool = True, app=None,
             **overrides) -> Iterator[UiStack]:
    settings = stack_settings(redis_url, database_url, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD,
                              **overrides)
    initialise(settings)
    server = HttpServer(app or create_app(settings)).start()
    worker = WorkerProcess(settings, threads=4) if workers else None
    redis = Redis.from_url(redis_url)
    try:
        if worker is not None:
            worker.start()
        add_user(settings, OPERATOR_EMAIL, OPERATOR_PASSWORD, "operator")
        with httpx.Client(base_url=server.base_url, headers=ADMIN, timeout=30) as http:
            yield UiStack(settings, server.base_url, http, redis, Keys(settings.merchant), worker)
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
        redis.close()
        cleanup(settings)


def login(page, base_url: str, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    page.goto(f"{base_url}/ui/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/orders/new")


def axe_violations(page) -> list[dict]:
    """Serious and critical WCAG 2.x A/AA (to 2.2) violations axe-core finds on the page."""
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values:
            ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def autofocused(page) -> str:
    """Waits until the page's autofocus field has focus (Chromium applies
    autofocus in a rendering step after "load": keys typed before it are
    lost) and returns that field's id or name."""
    page.wait_for_function("document.activeElement && document.activeElement.hasAttribute('autofocus')",
                           timeout=5000)
    return page.evaluate("document.activeElement.id || document.activeElement.name")


def type_keys(page, text: str) -> None:
    """Types like a person at 8 keys per second (keyboard events only)."""
    page.keyboard.type(text, delay=KEY_DELAY_MS)


def press(page, key: str) -> None:
    page.keyboard.press(key)
    page.wait_for_timeout(KEY_DELAY_MS)


def pg_scalar(database_url: str, sql: str, **params) -> Any:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def decode(raw: bytes) -> Any:
    return msgspec.json.decode(raw)
