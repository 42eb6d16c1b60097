"""`onhand ledger` and `onhand dead-letters`: what operators read and fix by
hand, from the same readers as the API (persistence/queries.py,
persistence/dead_letters.py)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from onhand.settings import Settings


def cmd_ledger(args, settings: Settings) -> int:
    import asyncio

    from onhand.servers import servers
    from persistence import queries
    from persistence.db import make_async_engine

    f = queries.LedgerFilter(sku=args.sku, order_id=args.order, reason=args.reason,
                             since=_time(args.since), until=_time(args.until))

    async def read(url: str, merchant: str):
        engine = make_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await queries.ledger(conn, merchant, f, args.limit, 0)
        finally:
            await engine.dispose()

    with servers(settings) as resolved:
        rows, total = asyncio.run(read(resolved.database_url, args.merchant or resolved.merchant))
    print(f"{'at':<24} {'sku':<20} {'order':<22} {'reason':<10} {'on hand':>8} {'reserved':>8} "
          f"{'backord.':>8} {'except.':>8}  actor")
    for r in rows:
        print(f"{r.at.isoformat(timespec='seconds'):<24} {r.sku:<20} {r.order_id or '':<22} {r.reason:<10} "
              f"{r.d_on_hand:>8} {r.d_reserved_dtc + r.d_reserved_wholesale:>8} "
              f"{r.d_backordered_dtc + r.d_backordered_wholesale:>8} {r.d_exception:>8}  {r.actor}")
    print(f"{len(rows)} of {total} movements", file=sys.stderr)
    return 0


def cmd_dead_letters(args, settings: Settings) -> int:
    from onhand.redis_clients import sync_client

    from onhand.servers import servers
    from persistence import dead_letters
    from persistence.apply import mark_synced_args
    from persistence.db import make_engine
    from workers.outbox import call_function

    with servers(settings) as resolved:
        engine = make_engine(resolved.database_url)
        merchant = args.merchant or resolved.merchant
        try:
            if args.action == "list":
                with engine.connect() as conn:
                    rows, total = dead_letters.listing(conn, merchant, status=args.status,
                                                       limit=args.limit, offset=0)
                for r in rows:
                    print(f"{r.event_id:<24} {r.resolution or dead_letters.OPEN:<10} failures={r.failures} "
                          f"{r.created_at.isoformat(timespec='seconds')}  {r.error[:120]}")
                print(f"{len(rows)} of {total} dead letters", file=sys.stderr)
                return 0
            try:
                with engine.begin() as conn:
                    if args.action == "replay":
                        replayed = dead_letters.replay(conn, merchant, args.event_id, actor="cli",
                                                       note=args.note)
                    else:
                        dead_letters.discard(conn, merchant, args.event_id, actor="cli",
                                             note=args.note)
            except dead_letters.DeadLetterError as exc:
                print(f"error: {exc.detail}", file=sys.stderr)
                return 1
            if args.action == "replay":
                from engine.keys import Keys

                args_ = mark_synced_args([replayed.entry], resolved.closed_order_retention_s * 1000)
                if args_:
                    redis = sync_client(resolved.redis_url)
                    try:
                        call_function(redis, "mark_synced", [Keys(merchant).prefix], args_)
                    finally:
                        redis.close()
                print(f"replayed {args.event_id}" + ("" if replayed.applied else
                                                      " (PostgreSQL already had it: nothing changed)"))
            else:
                print(f"discarded {args.event_id}")
            return 0
        finally:
            engine.dispose()


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise SystemExit(f"error: {text!r} needs a time zone (e.g. 2026-12-01T00:00:00Z)")
    return value


def add_parsers(sub: argparse._SubParsersAction) -> None:
    led = sub.add_parser("ledger", help="inventory movements, newest first")
    led.add_argument("--sku")
    led.add_argument("--order", help="an order id")
    led.add_argument("--reason", help="reserve, fill, ship, cancel, receipt, count, ...")
    led.add_argument("--since", help="RFC 3339 time, inclusive")
    led.add_argument("--until", help="RFC 3339 time, exclusive")
    led.add_argument("--limit", type=int, default=50)
    led.set_defaults(fn=cmd_ledger)

    dl = sub.add_parser("dead-letters", help="outbox entries that kept failing: list, replay, discard")
    dls = dl.add_subparsers(dest="action", required=True)
    ls = dls.add_parser("list")
    ls.add_argument("--status", choices=["open", "replayed", "discarded"], default="open")
    ls.add_argument("--limit", type=int, default=50)
    rp = dls.add_parser("replay", help="apply it again, once its cause is fixed")
    rp.add_argument("event_id")
    rp.add_argument("--note")
    dc = dls.add_parser("discard", help="resolve it without applying it")
    dc.add_argument("event_id")
    dc.add_argument("--note", required=True, help="why it is safe to drop")
    dl.set_defaults(fn=cmd_dead_letters)
