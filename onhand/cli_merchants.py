"""`onhand merchants create|list`: the merchants (tenants) of a deployment
(persistence/merchants.py). A new merchant gets its Redis state (an empty
pool, ready for orders) and a first admin API key, printed once."""

from __future__ import annotations

import argparse
import sys
import time

from onhand.settings import Settings


def cmd_merchants_create(args, settings: Settings) -> int:
    import asyncio

    from onhand.redis_clients import sync_client
    from onhand.redis_clients import async_client

    from api.auth import issue_key
    from engine.keys import Keys
    from engine.store import Store
    from onhand.servers import servers
    from persistence import merchants
    from persistence.db import make_engine, migrate
    from persistence.rebuild import Rebuilder

    shopify = {name: value for name, value in (
        ("shopify_shop", args.shopify_shop), ("shopify_api_secret", args.shopify_api_secret),
        ("shopify_access_token", args.shopify_access_token), ("shopify_location_id", args.shopify_location_id),
        ("shopify_api_url", args.shopify_api_url)) if value}
    record = merchants.MerchantRecord(args.id, args.name or args.id, shopify)

    async def admin_key(url: str):
        redis = async_client(url, pool_size=4)
        try:
            store = Store(redis, args.id)
            await store.start()
            return await issue_key(store, "admin", None, "first admin key", int(time.time() * 1000))
        finally:
            await redis.aclose()

    with servers(settings) as resolved:
        migrate(resolved.database_url, merchant=resolved.merchant)
        redis = sync_client(resolved.redis_url)
        engine = make_engine(resolved.database_url)
        try:
            with engine.begin() as conn:
                merchants.create(conn, redis, record, home=resolved.merchant)
            # an empty pool, ready for orders (the epoch, the outbox's consumer group)
            Rebuilder(redis, engine, Keys(args.id)).run()
            _, key = asyncio.run(admin_key(resolved.redis_url))
        except merchants.MerchantError as exc:
            print(f"error: {exc.field}: {exc}", file=sys.stderr)
            return 2
        finally:
            engine.dispose()
            redis.close()
    print(key)
    print(f"# merchant {args.id} created; this admin key is shown once (onhand keeps only its hash)",
          file=sys.stderr)
    return 0


def cmd_merchants_list(args, settings: Settings) -> int:
    from onhand.redis_clients import sync_client

    from engine.keys import Keys
    from onhand.servers import servers
    from persistence import merchants
    from persistence.db import make_engine

    with servers(settings) as resolved:
        engine = make_engine(resolved.database_url)
        redis = sync_client(resolved.redis_url)
        try:
            with engine.connect() as conn:
                records = {r.id: r for r in merchants.listing(conn)}
                ids = merchants.ids(conn, resolved.merchant)
            print(f"{'merchant':<34} {'name':<30} {'shopify shop':<36} state")
            for merchant in ids:
                record = records.get(merchant)
                keys = Keys(merchant)
                ready = "ready" if redis.exists(keys.epoch) else "not ready (rebuild)"
                backlog = redis.xlen(keys.outbox) if redis.exists(keys.outbox) else 0
                name = record.name if record else (resolved.merchant_name + " (home)")
                shop = (record.shopify.get("shopify_shop") if record else resolved.shopify_shop) or ""
                print(f"{merchant:<34} {name:<30} {shop:<36} {ready}, outbox {backlog}")
        finally:
            redis.close()
            engine.dispose()
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("merchants", help="the merchants (tenants) of this deployment")
    ms = m.add_subparsers(dest="merchants_command", required=True)
    mc = ms.add_parser("create", help="add a merchant (prints its first admin key once)")
    mc.add_argument("id", help="1-32 lowercase letters, digits and -")
    mc.add_argument("--name")
    mc.add_argument("--shopify-shop", help="its Shopify shop domain (webhooks from it are its)")
    mc.add_argument("--shopify-api-secret", help="the app's API secret for that shop (signs its webhooks)")
    mc.add_argument("--shopify-access-token")
    mc.add_argument("--shopify-location-id")
    mc.add_argument("--shopify-api-url", help="Shopify's Admin API base URL (default: the shop's)")
    mc.set_defaults(fn=cmd_merchants_create)
    ms.add_parser("list", help="every merchant, with its state").set_defaults(fn=cmd_merchants_list)
