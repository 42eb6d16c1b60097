"""Finding Redis and PostgreSQL: given URLs, the servers a running `serve`
recorded in the data dir, or embedded servers started here."""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path

import msgspec

from onhand.embedded import EmbeddedServer, start_postgres, start_valkey
from onhand.settings import Settings

log = logging.getLogger("onhand.servers")


class UnsafeRedis(RuntimeError):
    """Raised when Redis would acknowledge writes it may lose (no AOF fsync on
    every write) and ONHAND_ALLOW_UNSAFE_REDIS is not set."""


def servers_file(data_dir: Path) -> Path:
    return Path(data_dir) / "servers.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recorded(settings: Settings) -> dict | None:
    path = servers_file(settings.data_dir)
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if _alive(int(info.get("pid", 0))) else None


def record(settings: Settings, redis_url: str, database_url: str) -> None:
    path = servers_file(settings.data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "redis_url": redis_url, "database_url": database_url}))
    tmp.chmod(0o600)
    tmp.replace(path)


def forget(settings: Settings) -> None:
    path = servers_file(settings.data_dir)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


@contextmanager
def servers(settings: Settings, *, embedded_ok: bool = True):
    """Yields settings with both URLs filled in: the given ones, those a
    running `serve` recorded, or embedded servers started (and stopped) here."""
    started: list[EmbeddedServer] = []
    redis_url, database_url = settings.redis_url, settings.database_url
    if redis_url is None or database_url is None:
        info = recorded(settings)
        if info:
            redis_url = redis_url or info["redis_url"]
            database_url = database_url or info["database_url"]
    try:
        if redis_url is None or database_url is None:
            if not embedded_ok:
                raise RuntimeError("no ONHAND_REDIS_URL / ONHAND_DATABASE_URL and no running `onhand serve`")
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            if redis_url is None:
                log.info("starting embedded Valkey in %s", settings.data_dir / "valkey")
                server = start_valkey(settings.data_dir / "valkey", maxmemory_bytes=settings.redis_maxmemory_bytes)
                started.append(server)
                redis_url = server.url
            if database_url is None:
                log.info("starting embedded PostgreSQL in %s", settings.data_dir / "postgres")
                server = start_postgres(settings.data_dir / "postgres", owned=settings.data_dir)
                started.append(server)
                database_url = server.url
            record(settings, redis_url, database_url)
        yield msgspec.structs.replace(settings, redis_url=redis_url, database_url=database_url)
    finally:
        if started:
            forget(settings)
        for server in reversed(started):
            server.stop()


def check_redis_safety(redis, settings: Settings) -> str | None:
    """Returns why this Redis (on a cluster: any of its nodes) may lose
    acknowledged writes, or None when it fsyncs its AOF on every write."""
    from redis.cluster import RedisCluster

    if isinstance(redis, RedisCluster):
        for node in redis.get_nodes():
            why = check_redis_safety(redis.get_redis_connection(node), settings)
            if why:
                return f"{node.name}: {why}"
        return None
    try:
        conf = redis.config_get("appendonly")
        conf.update(redis.config_get("appendfsync"))
        policy = redis.config_get("maxmemory-policy")
    except Exception as exc:  # noqa: BLE001 - CONFIG may be disabled on managed Redis
        return f"cannot read Redis configuration ({exc}); onhand needs appendonly yes and appendfsync always"
    appendonly = conf.get("appendonly") or conf.get(b"appendonly")
    appendfsync = conf.get("appendfsync") or conf.get(b"appendfsync")
    evict = policy.get("maxmemory-policy") or policy.get(b"maxmemory-policy")
    appendonly = appendonly.decode() if isinstance(appendonly, bytes) else appendonly
    appendfsync = appendfsync.decode() if isinstance(appendfsync, bytes) else appendfsync
    evict = evict.decode() if isinstance(evict, bytes) else evict
    if appendonly != "yes" or appendfsync != "always":
        return (f"Redis runs with appendonly={appendonly} appendfsync={appendfsync}: an acknowledged "
                "reservation could be lost in a crash. onhand needs appendonly yes and appendfsync "
                "always (set ONHAND_ALLOW_UNSAFE_REDIS=1 for a throwaway instance)")
    if evict not in (None, "noeviction"):
        return (f"Redis runs with maxmemory-policy {evict}: it may evict stock keys. "
                "onhand needs maxmemory-policy noeviction")
    return None
