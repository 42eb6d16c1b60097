"""Worker steps for the documents (driven by the watchdog, workers/runtime.py):

- ``shipment_documents``: 856s and 810s of shipments now in PostgreSQL
  (exchange/shipment_docs.py), and documents recorded but not yet written;
- ``scan_inbox``: imports the files in ONHAND_EDI_INBOX (exchange/inbox.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading

from exchange.inbox import Inbox
from exchange.shipment_docs import ShipmentDocuments
from onhand.settings import Settings

log = logging.getLogger("onhand.edi")

#: One inbox scan at a time per process (processes are kept apart by flock).
_scanning = threading.Lock()


def shipment_documents(context, merchant: str) -> None:
    ShipmentDocuments(context.redis, context.engine, context.keys(merchant), context.settings_for(merchant)).run()


def scan_inbox(settings: Settings) -> int:
    """Imports every ready file; returns how many were moved."""
    if settings.edi_inbox is None or not _scanning.acquire(blocking=False):
        return 0
    try:
        return asyncio.run(_scan(settings))
    finally:
        _scanning.release()


async def _scan(settings: Settings) -> int:
    from engine.store import Store
    from onhand.redis_clients import async_client
    from exchange.imports import Importer
    from persistence.db import make_async_engine

    inbox = Inbox(settings.edi_inbox, settle_ms=settings.edi_inbox_settle_ms, max_bytes=settings.import_max_bytes)
    files = inbox.ready()
    if not files:
        return 0
    redis = async_client(settings.redis_url, pool_size=4)
    engine = make_async_engine(settings.database_url, pool_size=2)
    moved = 0
    try:
        store = Store(redis, settings.merchant, fill_limit=settings.fill_limit)
        await store.start()
        importer = Importer(store, engine, settings, actor="inbox")

        async def x12(data: bytes, name: str):
            return await importer.x12(data, source=name)

        async def csv(data: bytes, name: str):
            return await importer.orders_csv(data, source=name)

        for path in files:
            outcome = await inbox.process(path, x12, csv)
            moved += outcome is not None
    finally:
        await redis.aclose()
        await engine.dispose()
    return moved
