"""The watched inbox never loses a file: one being written is left alone, a
worker killed mid-import leaves it for the next scan (which creates nothing
twice), two workers never import one file twice, a 100 MB file is failed by
its size; every file ends in done/ or failed/ with its report."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ready_store
from tests.documents_support import add_customer, add_sku, drain, fixture, settings_for
from workers.edi import scan_inbox

pytestmark = pytest.mark.anyio
#: Orders in the file a worker is killed importing.
BIG = 4000
PARTNER = {"isa_qualifier": "12", "isa_id": "4405197800", "item_qualifiers": ["VN"]}


def _csv(n_orders: int, first: int = 0) -> bytes:
    rows = ["Customer,PO,Item,Qty"] + [f"ACCT,PO-{i},W1,1" for i in range(first, first + n_orders)]
    return ("\n".join(rows) + "\n").encode()


async def _setup(store, redis_url, database_url):
    await add_sku(store, "W1", 100_000)
    for sku in ("AB3542", "RD5322", "XY5266", "VX2332", "RV0524", "DX1875"):
        await add_sku(store, sku, 1000)
    await add_customer(store, "ACCT")
    await add_customer(store, "XYZ Retail", edi=PARTNER)
    await drain(store, redis_url, database_url)


async def _scan(settings) -> int:
    return await asyncio.to_thread(scan_inbox, settings)


def _old(path: Path) -> None:
    past = time.time() - 60
    os.utime(path, (past, past))


async def _order_count(store) -> int:
    return len([k async for k in store.redis.scan_iter(match=f"{store.keys.prefix}:o:*", count=1000)])


def _env(settings) -> dict:
    return {**os.environ, "ONHAND_REDIS_URL": settings.redis_url, "ONHAND_DATABASE_URL": settings.database_url,
            "ONHAND_MERCHANT": settings.merchant, "ONHAND_EDI_INBOX": str(settings.edi_inbox),
            "ONHAND_EDI_OUTBOX": str(settings.edi_outbox), "ONHAND_EDI_INBOX_SETTLE_MS": "0"}


WORKER = ("import sys; from onhand.settings import Settings; from workers.edi import scan_inbox; "
          "print(scan_inbox(Settings.from_env()))")


async def test_files_being_written_wait_and_every_file_ends_with_a_report(redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    await _setup(store, redis_url, database_url)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = settings_for(store, redis_url, database_url, tmp_path / "out", edi_inbox=inbox,
                            edi_inbox_settle_ms=2000)
    (inbox / "orders.csv").write_bytes(_csv(3))
    (inbox / "po.edi").write_bytes(fixture("01_850_4010VICS_node-x12.edi"))
    (inbox / "broken.csv").write_bytes(b"PO,Item\n1,W1\n")
    (inbox / ".hidden.csv").write_bytes(_csv(1, 100))
    (inbox / "upload.csv.part").write_bytes(_csv(1, 200))
    growing = inbox / "growing.csv"
    data = _csv(2, 300)
    with open(growing, "wb") as fh:  # a writer half-way through
        fh.write(data[:20])
    for name in ("orders.csv", "po.edi", "broken.csv"):
        _old(inbox / name)
    assert await _scan(settings) == 3
    left = sorted(p.name for p in inbox.iterdir() if p.is_file())
    assert left == [".hidden.csv", "growing.csv", "upload.csv.part"]
    done = sorted(p.name for p in (inbox / "done").iterdir())
    assert len(done) == 4 and sum(n.endswith("-orders.csv") for n in done) == 1
    (failed_report,) = [p for p in (inbox / "failed").iterdir() if p.name.endswith(".report.json")]
    report = json.loads(failed_report.read_text())
    assert report["ok"] is False and "missing column" in report["problems"][0]["message"]
    edi_report = json.loads(next(p for p in (inbox / "done").iterdir()
                                 if p.name.endswith("po.edi.report.json")).read_text())
    assert sorted(d["kind"] for d in edi_report["documents"]) == ["855", "997"]
    # When the writer finishes and the file settles, it is imported whole
    with open(growing, "ab") as fh:
        fh.write(data[20:])
    _old(growing)
    assert await _scan(settings) == 1
    assert await _order_count(store) == 3 + 1 + 2


async def test_a_worker_killed_mid_import_leaves_the_file_and_the_retry_creates_nothing_twice(
        redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    await _setup(store, redis_url, database_url)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = settings_for(store, redis_url, database_url, tmp_path / "out", edi_inbox=inbox)
    # big enough that the kill comes mid-import: 400 orders were once all in
    # before the first poll here saw 20 (a quick machine, a busy test process)
    (inbox / "big.csv").write_bytes(_csv(BIG))
    _old(inbox / "big.csv")
    proc = subprocess.Popen([sys.executable, "-c", WORKER], env=_env(settings))
    try:
        deadline = time.monotonic() + 60
        while await _order_count(store) < 20:
            assert time.monotonic() < deadline and proc.poll() is None, "the worker did not start importing"
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    placed = await _order_count(store)
    assert 20 <= placed < BIG
    assert (inbox / "big.csv").exists() and not (inbox / "done").exists() and not (inbox / "failed").exists()
    assert await _scan(settings) == 1
    assert await _order_count(store) == BIG
    report = json.loads(next(p for p in (inbox / "done").iterdir() if p.name.endswith(".report.json")).read_text())
    statuses = [o["status"] for o in report["orders"]]
    assert statuses.count("exists") >= placed - 1 and statuses.count("created") + statuses.count("exists") == BIG


async def test_two_workers_never_import_one_file_twice(redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    await _setup(store, redis_url, database_url)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = settings_for(store, redis_url, database_url, tmp_path / "out", edi_inbox=inbox)
    for n in range(12):
        (inbox / f"f{n:02d}.csv").write_bytes(_csv(5, n * 5))
        _old(inbox / f"f{n:02d}.csv")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER], env=_env(settings), stdout=subprocess.PIPE)
             for _ in range(2)]
    moved = [int(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    assert sum(moved) == 12
    files = sorted(p.name.split("-", 1)[1] for p in (inbox / "done").iterdir() if not p.name.endswith(".json"))
    assert files == [f"f{n:02d}.csv" for n in range(12)]
    reports = [json.loads(p.read_text()) for p in (inbox / "done").iterdir() if p.name.endswith(".json")]
    assert all(o["status"] == "created" for r in reports for o in r["orders"])
    assert await _order_count(store) == 60


async def test_a_100_mb_file_is_failed_by_its_size_and_kept(redis_url, database_url, tmp_path):
    store = await ready_store(redis_url)
    await _setup(store, redis_url, database_url)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = settings_for(store, redis_url, database_url, tmp_path / "out", edi_inbox=inbox)
    huge = inbox / "huge.csv"
    with open(huge, "wb") as fh:
        fh.write(_csv(1))
        fh.truncate(100 * 1024 * 1024)  # 100 MB (sparse: made without writing it)
    _old(huge)
    assert await _scan(settings) == 1
    (kept,) = [p for p in (inbox / "failed").iterdir() if p.name.endswith("huge.csv")]
    assert kept.stat().st_size == 100 * 1024 * 1024
    report = json.loads((inbox / "failed" / f"{kept.name}.report.json").read_text())
    assert "over the import limit" in report["problems"][0]["message"]
    assert await _order_count(store) == 0
