"""The document commands as a person runs them: `onhand import customers`,
`onhand import orders --dry-run` then for real, `onhand edi import`,
`onhand xref`; progress, every bad row, a summary, exit codes; a 100 MB file
refused by its size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from persistence.rebuild import Rebuilder
from tests.documents_support import fixture
from tests.servers import new_merchant


def _onhand(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onhand", *args], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def env(redis_url, database_url, tmp_path):
    from redis import Redis

    from engine.keys import Keys

    merchant = new_merchant()
    redis = Redis.from_url(redis_url)
    engine = create_engine(database_url)
    Rebuilder(redis, engine, Keys(merchant)).run()  # what serve does first: the epoch
    engine.dispose()
    redis.close()
    return {**os.environ, "ONHAND_REDIS_URL": redis_url, "ONHAND_DATABASE_URL": database_url,
            "ONHAND_MERCHANT": merchant, "ONHAND_DATA_DIR": str(tmp_path / "data"),
            "ONHAND_EDI_OUTBOX": str(tmp_path / "out")}


def test_import_commands_report_every_row_and_end_with_a_summary(env, tmp_path: Path):
    customers = tmp_path / "customers.csv"
    customers.write_text("Name,Account,Terms,ISA Qualifier,ISA ID,Item Qualifiers\n"
                         "XYZ Retail,XYZ,net 30,12,4405197800,VN\n")
    r = _onhand(env, "import", "customers", str(customers))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 created" in r.stdout and "customers: 1/1 (100%)" in r.stderr
    # SKUs: through the engine, as the API would
    r = _onhand(env, "import", "customers", str(customers))
    assert r.returncode == 0 and "1 unchanged" in r.stdout

    import asyncio

    from redis.asyncio import Redis

    from engine.store import Store
    from tests.documents_support import add_sku, drain

    async def skus():
        store = Store(Redis.from_url(env["ONHAND_REDIS_URL"]), env["ONHAND_MERCHANT"])
        await store.start()
        for sku in ("AB3542", "RD5322", "XY5266", "RV0524", "DX1875"):
            await add_sku(store, sku, 1000)
        await drain(store, env["ONHAND_REDIS_URL"], env["ONHAND_DATABASE_URL"])
        await store.redis.aclose()

    asyncio.run(skus())
    orders = tmp_path / "orders.csv"
    orders.write_text("Customer,PO #,Item,Qty\nXYZ,A-1,AB3542,12\nXYZ,A-1,RD5322,2\nXYZ,A-2,NOPE,1\n"
                      "XYZ,A-3,DX1875,zero\n")
    r = _onhand(env, "import", "orders", str(orders), "--dry-run")
    assert r.returncode == 1
    assert "line 4, column 'Item': unknown SKU 'NOPE'" in r.stdout
    assert "line 5, column 'Qty'" in r.stdout and r.stdout.strip().splitlines()[-1].startswith("dry run: ")
    r = _onhand(env, "import", "orders", str(orders))
    assert "PO A-1: created" in r.stdout and "1 created, 2 rejected" in r.stdout
    r = _onhand(env, "import", "orders", str(orders))
    assert "PO A-1: exists" in r.stdout

    po = tmp_path / "po.edi"
    po.write_bytes(fixture("01_850_4010VICS_node-x12.edi"))
    r = _onhand(env, "edi", "import", str(po))
    assert "PO 08292233294: created" in r.stdout and "sent 997" in r.stdout and "sent 855" in r.stdout
    assert "VX2332" in r.stdout  # the unknown part is reported
    assert len(list((tmp_path / "out").iterdir())) == 2

    r = _onhand(env, "xref", "set", "cus_x", "THEIR-1", "AB3542")
    assert r.returncode == 0 and r.stdout == "THEIR-1\tAB3542\n"


def test_a_100_mb_file_is_refused_by_its_size(env, tmp_path: Path):
    huge = tmp_path / "huge.csv"
    with open(huge, "wb") as fh:
        fh.truncate(100 * 1024 * 1024)
    r = _onhand(env, "import", "orders", str(huge))
    assert r.returncode == 2 and "over the import limit" in r.stderr and "it was not read" in r.stderr
