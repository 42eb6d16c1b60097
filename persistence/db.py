"""Engines and URLs. Nothing connects at import time."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

#: How long a connection attempt may take, seconds (PostgreSQL down must fail fast).
CONNECT_TIMEOUT_S = 3


def sqlalchemy_url(url: str) -> str:
    """postgres:// and postgresql:// URLs -> SQLAlchemy's psycopg 3 dialect."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def _pool_options(pool_size: int) -> dict:
    return {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True,
            "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    return create_engine(sqlalchemy_url(url), **_pool_options(pool_size))


def make_async_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    return create_async_engine(sqlalchemy_url(url), **_pool_options(pool_size))


def migrations_dir() -> Path:
    return Path(__file__).parent / "migrations"


def migrate(url: str, *, merchant: str = "default") -> None:
    """Brings the schema to the newest migration (alembic upgrade head).
    ``merchant`` is the deployment's own (ONHAND_MERCHANT): rows from before
    merchants existed (migration 0014) belong to it."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["url"] = sqlalchemy_url(url)
    cfg.attributes["merchant"] = merchant
    command.upgrade(cfg, "head")
