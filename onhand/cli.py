"""The `onhand` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from onhand.settings import Settings


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        for noisy in ("httpx", "alembic.runtime.plugins"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def merchant_of(args, settings: Settings) -> str:
    """The merchant a command works on: --merchant, else the home merchant."""
    return getattr(args, "merchant", None) or settings.merchant


def default_api_processes(cpus: int | None = None) -> int:
    """One API process per CPU but one (at least 1, at most 8). An API process
    is bound by its own Python CPU; Redis (one thread), the outbox drain worker
    and PostgreSQL need about three quarters of a core at the API's maximum
    (docs/benchmarks.md), so the last core is theirs. Above 8 processes Redis's
    one thread, not the API, is the limit."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(8, cpus - 1))


def _api_processes(text: str) -> int:
    if text == "auto":
        return default_api_processes()
    n = int(text)
    if n < 1:
        raise ValueError("at least one API process")
    return n


def cmd_serve(args, settings: Settings) -> int:
    from onhand.serve import serve

    return serve(settings, host=args.host, port=args.port, api_processes=args.api_processes,
                 worker_processes=args.worker_processes, app=args.app)


def cmd_worker(args, settings: Settings) -> int:
    from onhand.servers import servers
    from workers.brokers import check
    from workers.runtime import WorkerProcess

    check(settings)  # BrokerRefused before any connection
    with servers(settings, embedded_ok=False) as resolved:
        WorkerProcess(resolved, threads=args.threads).run()
    return 0


def cmd_migrate(args, settings: Settings) -> int:
    from onhand.servers import servers
    from persistence.db import migrate

    with servers(settings) as resolved:
        migrate(resolved.database_url, merchant=resolved.merchant)
    print("migrated")
    return 0


def _progress(stage: str, done: int, total: int) -> None:
    pct = 100 * done // total if total else 100
    print(f"\r  {stage}: {done}/{total} ({pct}%)", end="", file=sys.stderr, flush=True)
    if done >= total:
        print(file=sys.stderr)


def cmd_rebuild(args, settings: Settings) -> int:
    from onhand.redis_clients import sync_client

    from engine.keys import Keys
    from onhand.servers import servers
    from persistence.db import make_engine, migrate
    from persistence.rebuild import Rebuilder

    with servers(settings) as resolved:
        migrate(resolved.database_url, merchant=resolved.merchant)
        redis = sync_client(resolved.redis_url)
        engine = make_engine(resolved.database_url)
        rebuilder = Rebuilder(redis, engine, Keys(merchant_of(args, resolved)),
                              closed_order_retention_ms=resolved.closed_order_retention_s * 1000,
                              progress=_progress)
        report = rebuilder.run(force=True)
        print(f"rebuilt in {report.seconds:.1f} s: {report.skus} SKUs, {report.orders} orders "
              f"({report.open_lines} open lines), {report.customers} customers, {report.api_keys} API keys, "
              f"{report.idempotency_records} idempotency records, {report.webhook_records} webhook records"
              + (f"; first drained {report.drained_first} outbox entries" if report.drained_first else ""))
        for warning in report.warnings:
            print(f"warning: {warning}")
        engine.dispose()
    return 0


def cmd_reconcile(args, settings: Settings) -> int:
    from onhand.redis_clients import sync_client

    from engine.keys import Keys
    from onhand.servers import servers
    from persistence.db import make_engine
    from persistence.reconcile import reconcile

    with servers(settings) as resolved:
        redis = sync_client(resolved.redis_url)
        engine = make_engine(resolved.database_url)
        result = reconcile(redis, engine, Keys(merchant_of(args, resolved)), settle_s=args.settle,
                           progress=_progress)
        engine.dispose()
        _keep_reconcile_result(redis, Keys(resolved.merchant), result)
    for drift in result.drifts:
        print(f"DRIFT {drift.kind} {drift.entity}: {drift.detail}")
    print(f"reconcile: {result.checked_skus} SKUs and {result.checked_orders} orders checked against "
          f"PostgreSQL at outbox cut-off {result.cutoff} ({result.pending} entries not yet applied); "
          f"{len(result.drifts)} drift(s) still there on the second pass"
          + (f", {result.transient} cleared by then" if result.transient else ""))
    return 1 if result.drifts else 0


def _keep_reconcile_result(redis, keys, result) -> None:
    """The staff UI's exceptions page shows the last reconcile (ui/exceptions.py)."""
    import msgspec
    from datetime import UTC, datetime

    from ui.exceptions import RECONCILE_KEY

    summary = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "checked_skus": result.checked_skus,
               "checked_orders": result.checked_orders,
               "drifts": [{"kind": d.kind, "entity": d.entity, "detail": d.detail} for d in result.drifts[:100]]}
    redis.set(f"{keys.prefix}:{RECONCILE_KEY}", msgspec.json.encode(summary))


def cmd_keys_create(args, settings: Settings) -> int:
    import asyncio

    from onhand.redis_clients import async_client

    from api.auth import KeyRequestError, issue_key
    from engine.store import Store
    from onhand.servers import servers

    async def create(url: str):
        redis = async_client(url, pool_size=4)
        try:
            store = Store(redis, merchant_of(args, settings))
            await store.start()
            return await issue_key(store, args.role, args.customer, args.name, int(time.time() * 1000))
        finally:
            await redis.aclose()

    with servers(settings) as resolved:
        try:
            record, key = asyncio.run(create(resolved.redis_url))
        except KeyRequestError as exc:
            print(f"error: {exc.field}: {exc}", file=sys.stderr)
            return 2
    print(key)
    print(f"# id {record.id}, role {record.role}"
          + (f", customer {record.customer_id}" if record.customer_id else "")
          + ". The key is shown this once; onhand keeps only its hash.", file=sys.stderr)
    return 0


def cmd_demo(args, settings: Settings) -> int:
    from onhand.demo import run_demo

    return run_demo(settings, url=args.url, key=args.key)


def cmd_bench(args, settings: Settings) -> int:
    try:
        from loadtests.engine_bench import main as engine_bench
    except ModuleNotFoundError as exc:
        if exc.name != "loadtests":
            raise
        print("onhand bench runs from a source checkout (the benchmarks are not part of the "
              "installed package): ./dev onhand bench ...", file=sys.stderr)
        return 2

    if args.what == "engine":
        return engine_bench(settings, orders=args.orders, out=args.out)
    if args.what == "rebuild":
        from loadtests.durability_bench import rebuild_bench

        return rebuild_bench(out=args.out)
    if args.what == "lag":
        from loadtests.durability_bench import lag_bench

        return lag_bench(out=args.out)
    if args.what == "documents":
        from loadtests.documents_bench import main as documents_bench

        return documents_bench(settings, lines=args.lines, out=args.out)
    if args.what == "hotpath":
        from loadtests.hotpath import main as hotpath_bench

        return hotpath_bench(settings, out=args.out, quick=args.quick)
    if args.what == "cluster":
        from loadtests.cluster_bench import main as cluster_bench

        return cluster_bench(settings, out=args.out, quick=args.quick)
    if args.what == "webhooks":
        from loadtests.notify_bench import main as webhooks_bench

        return webhooks_bench(settings, out=args.out, quick=args.quick)
    if args.what == "ui":
        from loadtests.ui_bench import ui_bench

        return ui_bench(settings, skus=args.skus, orders=args.orders, out=args.out, quick=args.quick)
    from loadtests.bench import main as load_bench

    return load_bench(settings, out=args.out, quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onhand", description="One inventory pool for DTC and wholesale.")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--merchant", help="the merchant a command works on (default: ONHAND_MERCHANT, "
                                      "the deployment's own)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the whole service")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-processes", type=_api_processes, default="auto",
                   help="API processes (default auto: one per CPU but one, at least one and at "
                        "most 8: the last core is left to Redis, the drain worker and PostgreSQL; "
                        "docs/operations.md)")
    s.add_argument("--worker-processes", type=int, default=1)
    s.add_argument("--app", default="api.app:create_default_app",
                   help="the ASGI app factory the API processes serve (module:function; "
                        "the load benchmark serves its PostgreSQL baseline this way)")
    s.set_defaults(fn=cmd_serve)

    w = sub.add_parser("worker", help="run the background workers only")
    w.add_argument("--threads", type=int, default=8,
                   help="actor threads (2 drain the outbox, 1 syncs Shopify; the rest push fulfillments and fills)")
    w.set_defaults(fn=cmd_worker)

    sub.add_parser("migrate", help="bring the PostgreSQL schema up to date").set_defaults(fn=cmd_migrate)
    sub.add_parser("rebuild", help="rebuild Redis state from PostgreSQL").set_defaults(fn=cmd_rebuild)

    r = sub.add_parser("reconcile", help="compare Redis with PostgreSQL; exit 1 on drift")
    r.add_argument("--settle", type=float, default=3.0,
                   help="seconds to wait before the second pass (default 3)")
    r.set_defaults(fn=cmd_reconcile)

    k = sub.add_parser("keys", help="API keys")
    ks = k.add_subparsers(dest="keys_command", required=True)
    kc = ks.add_parser("create", help="create an API key (printed once)")
    kc.add_argument("--role", required=True, choices=["admin", "operator", "wholesale"])
    kc.add_argument("--customer")
    kc.add_argument("--name")
    kc.set_defaults(fn=cmd_keys_create)

    d = sub.add_parser("demo", help="load a demo merchant and play the Tuesday scenario")
    d.add_argument("--url", default="http://127.0.0.1:8000", help="a running onhand (default: local serve)")
    d.add_argument("--key", help="an admin key (default: ONHAND_ADMIN_KEY)")
    d.set_defaults(fn=cmd_demo)

    b = sub.add_parser("bench", help="benchmarks")
    b.add_argument("what", choices=["engine", "load", "rebuild", "lag", "documents", "webhooks", "hotpath", "ui",
                                    "cluster"],
                   help="engine: Lua engine rates and memory; load: Locust scenarios vs the PostgreSQL "
                        "baseline; rebuild: Redis rebuilt from PostgreSQL; lag: PostgreSQL behind Redis; "
                        "documents: CSV and 850 imports vs the same orders through the API; "
                        "webhooks: delivery throughput and the order rate with endpoints subscribed; "
                        "hotpath: POST /v1/orders against the bare stack it stands on (the yardstick); "
                        "ui: the staff UI's searches and pages at 50,000 SKUs and 200,000 orders; "
                        "cluster: reservations and Redis CPU per reservation per shard on 1, 2 and 3 primaries")
    b.add_argument("--orders", type=int, default=200_000)
    b.add_argument("--skus", type=int, default=50_000, help="SKUs (bench ui)")
    b.add_argument("--out", default="bench-report")
    b.add_argument("--quick", action="store_true", help="the short smoke version")
    b.add_argument("--lines", type=int, default=5000,
                   help="documents: CSV lines (the 850 has 2/5 as many PO1 lines)")
    b.set_defaults(fn=cmd_bench)

    from onhand import cli_merchants, cli_ops
    from onhand.documents_cli import add_parsers as add_document_parsers

    cli_ops.add_parsers(sub)
    cli_merchants.add_parsers(sub)
    add_document_parsers(sub)
    from onhand import cli_users

    cli_users.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from onhand.embedded_fs import EmbeddedServerError
    from workers.brokers import BrokerRefused

    args = build_parser().parse_args(argv)
    _logging(args.verbose)
    try:
        return args.fn(args, Settings.from_env())
    except EmbeddedServerError as exc:
        logging.getLogger("onhand").error("cannot start the embedded servers: %s", exc)
        return 1
    except BrokerRefused as exc:
        logging.getLogger("onhand").error("refusing to start: %s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
