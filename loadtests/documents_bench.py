"""`onhand bench documents`: imports of a CSV of N lines (orders of 10 lines)
and of an X12 850 file with 2N/5 PO1 lines (transaction sets of at most 500
lines, the most an order holds), beside the same orders placed through the
API one by one (POST /v1/orders, sequentially, as a script retyping them
would). One `onhand serve` on embedded servers with production durability
(or the given ONHAND_REDIS_URL / ONHAND_DATABASE_URL); the imports run in
this process, as `onhand import` does, with its progress display.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path

import httpx
from redis.asyncio import Redis

from loadtests.stack import (ADMIN_KEY, Service, forget_merchant, remove, scratch_dir, servers,
                             unsafe_redis_env)
from onhand.settings import Settings

#: SKUs the generated orders draw on (stock enough for every run); as many
#: as a transaction set has lines, so no order merges lines of one SKU.
SKUS = 500
LINES_PER_ORDER = 10
LINES_PER_SET = 500
PARTNER = ("ZZ", "BENCHBUYER")


def _progress(stage: str, done: int, total: int) -> None:
    from onhand.cli import _progress as show

    if done == total or done % max(1, total // 20) == 0:
        show(stage, done, total)


def csv_orders(lines: int, tag: str) -> bytes:
    rows = ["Customer,PO Number,Item,Qty,Unit Price"]
    for i in range(lines):
        rows.append(f"BENCH,CSV-{tag}-{i // LINES_PER_ORDER},SKU-{i % SKUS:03d},{1 + i % 3},2.50")
    return ("\n".join(rows) + "\n").encode()


def x12_orders(lines: int, tag: str) -> bytes:
    """One interchange, one group, transaction sets of up to 500 PO1 lines."""
    from datetime import UTC, datetime

    from documents.x12.writer import Envelope, GroupOut, TransactionSetOut, interchange, set_control

    sets = []
    for n, start in enumerate(range(0, lines, LINES_PER_SET)):
        count = min(LINES_PER_SET, lines - start)
        body = [["BEG", "00", "SA", f"EDI-{tag}-{n}", "", "20260301"], ["N1", "ST", "BENCH STORE", "92", "0001"]]
        qty = 0
        for i in range(count):
            q = 1 + (start + i) % 3
            qty += q
            body.append(["PO1", str(i + 1), str(q), "EA", "2.50", "", "VN", f"SKU-{(start + i) % SKUS:03d}"])
        body.append(["CTT", str(count), str(qty)])
        sets.append(TransactionSetOut("850", set_control(n + 1), body))
    env = Envelope(sender_qualifier=PARTNER[0], sender_id=PARTNER[1], receiver_qualifier="ZZ",
                   receiver_id="BENCHSELLER", gs_sender=PARTNER[1], gs_receiver="BENCHSELLER")
    return interchange(env, 1, [GroupOut("PO", 1, sets)], datetime.now(UTC))


def _api_orders(lines: int, x12_lines: int, customer_id: str, tag: str) -> list[dict]:
    out = []
    for start in range(0, lines, LINES_PER_ORDER):
        out.append({"channel": "wholesale", "customer_id": customer_id, "po_number": f"API-{tag}-{start}",
                    "lines": [{"sku": f"SKU-{i % SKUS:03d}", "quantity": 1 + i % 3, "unit_price": "2.50"}
                              for i in range(start, min(start + LINES_PER_ORDER, lines))]})
    for start in range(0, x12_lines, LINES_PER_SET):
        merged: dict[str, int] = {}
        for i in range(start, min(start + LINES_PER_SET, x12_lines)):
            merged[f"SKU-{i % SKUS:03d}"] = merged.get(f"SKU-{i % SKUS:03d}", 0) + 1 + i % 3
        out.append({"channel": "wholesale", "customer_id": customer_id, "po_number": f"APIX-{tag}-{start}",
                    "lines": [{"sku": s, "quantity": q} for s, q in merged.items()]})
    return out


async def _setup(client: httpx.AsyncClient, total_units: int) -> str:
    for n in range(SKUS):
        sku = f"SKU-{n:03d}"
        assert (await client.put(f"/v1/skus/{sku}", json={"name": sku})).status_code == 200
    r = await client.post("/v1/inventory/receipts", json={
        "reference": f"bench-{uuid.uuid4().hex[:6]}",
        "lines": [{"sku": f"SKU-{n:03d}", "quantity": total_units} for n in range(SKUS)]})
    assert r.status_code == 201, r.text
    r = await client.post("/v1/customers", json={"name": "BENCH", "profiles": [{
        "channel": "wholesale", "payment_terms": "net_30",
        "edi": {"isa_qualifier": PARTNER[0], "isa_id": PARTNER[1], "item_qualifiers": ["VN"], "send_855": True}}]})
    assert r.status_code == 201, r.text
    customer_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while not (await client.get("/v1/customers", params={"q": "BENCH"})).json()["items"]:
        assert time.monotonic() < deadline, "the customer did not reach PostgreSQL"
        await asyncio.sleep(0.2)
    return customer_id


async def _run(service: Service, settings: Settings, lines: int, outbox: Path) -> dict:
    from engine.store import Store
    from exchange.imports import Importer
    from persistence.db import make_async_engine

    x12_lines = max(1, lines * 2 // 5)
    tag = uuid.uuid4().hex[:6]
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=service.url, headers=headers, timeout=120) as client:
        customer_id = await _setup(client, lines * 10)
        redis = Redis.from_url(service.servers.redis_url)
        engine = make_async_engine(service.database_url)
        try:
            store = Store(redis, service.merchant)
            await store.start()
            importer = Importer(store, engine, Settings(
                redis_url=service.servers.redis_url, database_url=service.database_url,
                merchant=service.merchant, edi_outbox=outbox, merchant_name="bench"), actor="bench")
            data = csv_orders(lines, tag)
            t0 = time.perf_counter()
            csv_report = await importer.orders_csv(data, progress=_progress)
            csv_s = time.perf_counter() - t0
            data = x12_orders(x12_lines, tag)
            t0 = time.perf_counter()
            x12_report = await importer.x12(data, progress=_progress)
            x12_s = time.perf_counter() - t0
        finally:
            await redis.aclose()
            await engine.dispose()
        orders = _api_orders(lines, x12_lines, customer_id, tag)
        t0 = time.perf_counter()
        for done, body in enumerate(orders, 1):
            r = await client.post("/v1/orders", json=body)
            assert r.status_code == 201, r.text
            _progress("orders through the API", done, len(orders))
        api_s = time.perf_counter() - t0
    created = lambda rep: sum(1 for o in rep.orders if o.status == "created")  # noqa: E731
    return {"lines": lines, "x12_lines": x12_lines, "csv_s": csv_s, "x12_s": x12_s, "api_s": api_s,
            "csv_orders": created(csv_report), "x12_orders": created(x12_report),
            "documents": len(x12_report.documents), "api_orders": len(orders),
            "api_csv_orders": -(-lines // LINES_PER_ORDER)}


def render(r: dict) -> str:
    api_csv_share = r["api_s"] * r["api_csv_orders"] / r["api_orders"]
    api_x12_share = r["api_s"] - api_csv_share
    return "\n".join([
        "# Document imports",
        "",
        f"CSV: {r['lines']:,} lines in {r['csv_orders']} orders of {LINES_PER_ORDER} lines; X12: one 850 file "
        f"with {r['x12_lines']:,} PO1 lines in {r['x12_orders']} transaction sets; the same orders through "
        f"the API one by one ({r['api_orders']} POST /v1/orders, sequential).",
        "",
        "| path | orders | lines | seconds | lines/s |",
        "|---|---|---|---|---|",
        f"| CSV import (`onhand import orders`) | {r['csv_orders']} | {r['lines']} | {r['csv_s']:.2f} | "
        f"{r['lines'] / r['csv_s']:,.0f} |",
        f"| X12 850 import (`onhand edi import`, with its 997 and {r['x12_orders']} 855s) | {r['x12_orders']} | "
        f"{r['x12_lines']} | {r['x12_s']:.2f} | {r['x12_lines'] / r['x12_s']:,.0f} |",
        f"| the CSV's orders through the API, one by one | {r['api_csv_orders']} | {r['lines']} | "
        f"{api_csv_share:.2f} | {r['lines'] / api_csv_share:,.0f} |",
        f"| the 850's orders through the API, one by one | {r['api_orders'] - r['api_csv_orders']} | "
        f"{r['x12_lines']} | {api_x12_share:.2f} | {r['x12_lines'] / max(api_x12_share, 1e-9):,.0f} |",
        "",
    ])


def main(settings: Settings, *, lines: int = 5000, out: str = "bench-report") -> int:
    workdir = scratch_dir()
    merchant = "benchdocs" + uuid.uuid4().hex[:6]
    try:
        with servers(settings, workdir) as found:
            service = Service("onhand", found, workdir, merchant=merchant, extra_env=unsafe_redis_env(found))
            print(f"starting onhand serve in {workdir}", file=sys.stderr)
            service.start()
            try:
                result = asyncio.run(_run(service, settings, lines, workdir / "outbox"))
            finally:
                service.stop()
                from redis import Redis as SyncRedis

                forget_merchant(SyncRedis.from_url(found.redis_url), merchant)
    finally:
        remove(workdir)
    text = render(result)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "documents.md").write_text(text)
    print(text)
    return 0
