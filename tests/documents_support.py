"""What the document tests share: a store and a database with the outbox
drained into it, SKUs with stock, trading-partner customers, an Importer."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
from redis import Redis
from sqlalchemy import create_engine, text

from engine.commands import Op, PutRecord, PutSku, ReceiveStock, SkuQty
from engine.store import Store
from exchange.imports import Importer
from onhand.settings import Settings
from persistence.db import make_async_engine
from workers.outbox import Drainer

FIXTURES = Path(__file__).parent / "fixtures" / "edi"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def op(prefix: str = "t") -> Op:
    return Op(op_id=f"{prefix}-{uuid.uuid4().hex}", now_ms=int(time.time() * 1000), actor="test")


async def drain(store: Store, redis_url: str, database_url: str) -> None:
    """Carries the outbox into PostgreSQL (what the workers do)."""
    def run() -> None:
        redis = Redis.from_url(redis_url)
        engine = create_engine(database_url)
        try:
            drainer = Drainer(redis, engine, store.keys, slot=0, batch=500)
            while redis.xlen(store.keys.outbox):
                drainer.run_for(0.3)
        finally:
            engine.dispose()
            redis.close()

    await asyncio.to_thread(run)


async def add_sku(store: Store, sku: str, on_hand: int, **meta) -> None:
    await store.run(PutSku(sku=sku, meta={"name": sku, **meta}), op("sku"))
    if on_hand:
        await store.run(ReceiveStock(receipt_id=f"r{uuid.uuid4().hex[:12]}",
                                     lines=(SkuQty(sku=sku, qty=on_hand),)), op("rcv"))


async def add_customer(store: Store, name: str, *, edi: dict | None = None, **profile) -> dict:
    cid = "cus_" + uuid.uuid4().hex[:16]
    prof = {"id": "prf_" + uuid.uuid4().hex[:16], "channel": "wholesale", **profile}
    if edi is not None:
        prof["edi"] = edi
    doc = {"id": cid, "name": name, "profiles": [prof], "created_at_ms": int(time.time() * 1000)}
    await store.run(PutRecord(kind="customer", id=cid, doc=msgspec.json.encode(doc).decode()), op("cus"))
    return doc


def settings_for(store: Store, redis_url: str, database_url: str, outbox: Path, **overrides) -> Settings:
    return Settings(redis_url=redis_url, database_url=database_url, merchant=store.keys.merchant,
                    edi_outbox=outbox, **overrides)


@asynccontextmanager
async def importer(store: Store, redis_url: str, database_url: str, outbox: Path, **overrides):
    engine = make_async_engine(database_url)
    try:
        yield Importer(store, engine, settings_for(store, redis_url, database_url, outbox, **overrides))
    finally:
        await engine.dispose()


def count(database_url: str, sql: str, **params) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar() or 0)
    finally:
        engine.dispose()
