from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from redis.asyncio import Redis

from engine.store import Store
from onhand.embedded import start_valkey
from tests.servers import RABBITMQ_URL, env_redis_url, new_merchant, own_dir, rabbitmq_unavailable, remove_dir


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = env_redis_url()
    if url:
        yield url
        return
    path = own_dir("valkey")
    server = start_valkey(path, appendfsync="everysec")
    try:
        yield server.url
    finally:
        server.stop()
        remove_dir(path)


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The machine's RabbitMQ; the test is skipped when none answers."""
    why = rabbitmq_unavailable()
    if why:
        pytest.skip(f"RabbitMQ broker tests skipped: {why}")
    return RABBITMQ_URL


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request) -> str | None:
    """The worker tests run on both brokers: None is the Redis broker (the
    default), else a RabbitMQ URL. Each test's queues carry its own
    merchant's namespace and are deleted after it (tests/harness.cleanup)."""
    if request.param == "redis":
        return None
    return request.getfixturevalue("rabbitmq_url")


async def drop_merchant(redis: Redis, store: Store) -> None:
    async for key in redis.scan_iter(match=store.keys.pattern(), count=1000):
        await redis.unlink(key)


async def ready_store(redis_url: str, **kwargs) -> Store:
    """A Store under a fresh merchant, scripts loaded, epoch written."""
    redis = Redis.from_url(redis_url)
    store = Store(redis, new_merchant(), **kwargs)
    await store.start()
    await redis.set(store.keys.epoch, "test")
    return store


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:
        yield r


# ---------------------------------------------------------------- PostgreSQL

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from onhand.embedded import start_postgres  # noqa: E402
from persistence.db import migrate, sqlalchemy_url  # noqa: E402
from tests.servers import env_database_url  # noqa: E402


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A PostgreSQL server URL (its own database is used only to create others)."""
    url = env_database_url()
    if url:
        yield sqlalchemy_url(url)
        return
    path = own_dir("postgres")
    server = start_postgres(path, fsync=False)
    try:
        yield server.url
    finally:
        server.stop()
        remove_dir(path)


def _admin(url: str):
    return create_engine(url, isolation_level="AUTOCOMMIT")


def database_url_for(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_template(pg_server_url: str) -> Iterator[str]:
    """A database migrated once; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    name = "onhand_tpl_" + new_merchant()
    admin = _admin(pg_server_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    migrate(database_url_for(pg_server_url, name))
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def fresh_database(pg_server_url: str, pg_template: str, prefix: str) -> Iterator[str]:
    """A new database copied from the migrated template, dropped afterwards."""
    name = prefix + new_merchant()
    admin = _admin(pg_server_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    try:
        yield database_url_for(pg_server_url, name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def database_url(pg_server_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    with fresh_database(pg_server_url, pg_template, "onhand_t_") as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(pg_server_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated database for one test module (its tests share one stack)."""
    with fresh_database(pg_server_url, pg_template, "onhand_ui_") as url:
        yield url
