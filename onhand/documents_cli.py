"""`onhand import ...`, `onhand edi import`, `onhand xref ...`: the document
commands (kept apart from onhand/cli.py, which only wires them)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from onhand.settings import Settings


def _print_report(report) -> int:
    for p in report.problems:
        print(f"  {_where(p)}{p.message}")
    for o in report.orders:
        head = f"  PO {o.po_number}: {o.status}" + (f" ({o.order_id})" if o.order_id else "")
        print(head)
        for p in o.problems:
            print(f"    {_where(p)}{p.message}")
        for line in o.lines:
            if line.error:
                print(f"    line {line.line}: {line.error}")
    for c in report.customers:
        if c.status != "unchanged" or c.problems:
            print(f"  line {c.line} {c.name or ''}: {c.status}" + (f" ({c.customer_id})" if c.customer_id else ""))
        for p in c.problems:
            print(f"    {_where(p)}{p.message}")
    for doc in report.documents:
        print(f"  sent {doc.kind} {doc.id} (interchange {doc.interchange_control})")
    print(report.summary())
    bad = (not report.ok or report.problems or any(o.status in ("rejected", "refused") or o.problems
                                                   for o in report.orders)
           or any(c.status == "rejected" for c in report.customers))
    return 1 if bad else 0


def _where(p) -> str:
    parts = []
    if p.line is not None:
        parts.append(f"line {p.line}")
    if p.column:
        parts.append(f"column {p.column!r}")
    if p.segment:
        parts.append(f"segment {p.segment}" + (f" at {p.position}" if p.position else ""))
    return (", ".join(parts) + ": ") if parts else ""


async def _with_importer(settings: Settings, fn):
    from redis.asyncio import Redis

    from engine.store import Store
    from exchange.imports import Importer
    from persistence.db import make_async_engine

    redis = Redis.from_url(settings.redis_url)
    engine = make_async_engine(settings.database_url, pool_size=2)
    try:
        store = Store(redis, settings.merchant, fill_limit=settings.fill_limit)
        await store.start()
        return await fn(Importer(store, engine, settings, actor="cli"))
    finally:
        await redis.aclose()
        await engine.dispose()


def run_import(args, settings: Settings, kind: str, progress) -> int:
    from exchange.files import TooLarge, read_limited
    from onhand.servers import servers

    path = Path(args.file)
    try:
        data = read_limited(path, settings.import_max_bytes)
    except TooLarge as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {path}: {exc.strerror}", file=sys.stderr)
        return 2

    async def go(importer):
        if kind == "x12":
            return await importer.x12(data, dry_run=args.dry_run, progress=progress, source=path.name)
        if kind == "customers":
            return await importer.customers_csv(data, dry_run=args.dry_run, progress=progress,
                                                encoding=args.encoding, source=path.name)
        return await importer.orders_csv(data, customer_id=args.customer, dry_run=args.dry_run,
                                         progress=progress, encoding=args.encoding, source=path.name)

    with servers(settings) as resolved:
        report = asyncio.run(_with_importer(resolved, go))
    return _print_report(report)


def run_xref(args, settings: Settings) -> int:
    from onhand.servers import servers
    from persistence import edi
    from persistence.db import make_engine

    with servers(settings) as resolved:
        engine = make_engine(resolved.database_url)
        try:
            with engine.begin() as conn:
                if args.xref_command == "set":
                    edi.put_item_refs(conn, resolved.merchant, args.customer, {args.buyer_item: args.sku})
                elif args.xref_command == "delete":
                    if not edi.delete_item_ref(conn, resolved.merchant, args.customer, args.buyer_item):
                        print(f"error: {args.customer} has no buyer item {args.buyer_item!r}", file=sys.stderr)
                        return 1
                refs = edi.item_refs(conn, resolved.merchant, args.customer)
        finally:
            engine.dispose()
    for item, sku in refs.items():
        print(f"{item}\t{sku}")
    print(f"{len(refs)} buyer item(s) for {args.customer}", file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    from onhand import cli

    i = sub.add_parser("import", help="import wholesale orders or customers from a CSV")
    isub = i.add_subparsers(dest="import_command", required=True)
    io_ = isub.add_parser("orders", help="orders: one row per line, order columns repeated")
    io_.add_argument("file")
    io_.add_argument("--dry-run", action="store_true", help="check every row, change nothing")
    io_.add_argument("--customer", help="the customer of every row (else the file's customer column)")
    io_.add_argument("--encoding", default="utf-8")
    io_.set_defaults(fn=lambda a, s: run_import(a, s, "orders", cli._progress))
    ic = isub.add_parser("customers", help="wholesale customers with one profile each")
    ic.add_argument("file")
    ic.add_argument("--dry-run", action="store_true")
    ic.add_argument("--encoding", default="utf-8")
    ic.set_defaults(fn=lambda a, s: run_import(a, s, "customers", cli._progress))

    e = sub.add_parser("edi", help="X12 EDI documents")
    esub = e.add_subparsers(dest="edi_command", required=True)
    ei = esub.add_parser("import", help="import an X12 file of 850 purchase orders")
    ei.add_argument("file")
    ei.add_argument("--dry-run", action="store_true")
    ei.set_defaults(fn=lambda a, s: run_import(a, s, "x12", cli._progress))

    x = sub.add_parser("xref", help="a customer's buyer item -> SKU cross-reference")
    xsub = x.add_subparsers(dest="xref_command", required=True)
    xl = xsub.add_parser("list")
    xl.add_argument("customer")
    xs = xsub.add_parser("set")
    xs.add_argument("customer")
    xs.add_argument("buyer_item")
    xs.add_argument("sku")
    xd = xsub.add_parser("delete")
    xd.add_argument("customer")
    xd.add_argument("buyer_item")
    for p in (xl, xs, xd):
        p.set_defaults(fn=run_xref)
