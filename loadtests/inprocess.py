"""CPU per request of the API's hot routes in one process, no HTTP server:
the Litestar app called as an ASGI app, 16 requests at a time, against the
given (or embedded) Redis and PostgreSQL. A quick way to see what a change
to the order path costs, without wrk or granian; `onhand bench hotpath`
is the measurement of record.

    python -m loadtests.inprocess [--requests 5000] [--kinds wholesale,dtc]

Compare two checkouts by running it in each, alternately, a few times: the
CPU of a shared machine drifts, so only runs close together compare.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

import httpx
import msgspec
import uvloop

from loadtests.stack import ADMIN_KEY, remove, scratch_dir, servers
from onhand.settings import Settings

BODIES = {
    "wholesale": b'{"channel":"wholesale","lines":[{"sku":"HOT","quantity":1}]}',
    "dtc": b'{"channel":"dtc","lines":[{"sku":"HOT","quantity":1}]}',
}


async def _call(app, path: str, body: bytes, headers: list) -> int:
    sent: list = []
    chunks = [body]

    async def receive():
        return {"type": "http.request", "body": chunks.pop() if chunks else b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
               "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
               "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}, receive, send)
    return sent[0]["status"]


async def _measure(settings: Settings, requests: int, kinds: list[str]) -> dict[str, float]:
    from api.app import create_app

    app = create_app(settings)
    inbox, outbox = asyncio.Queue(), asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    life = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   inbox.get, outbox.put))
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    out: dict[str, float] = {}
    try:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app",
                                     headers=admin) as c:
            assert (await c.put("/v1/skus/HOT", json={"name": "hot"})).status_code == 200
            assert (await c.post("/v1/inventory/receipts", json={
                "reference": "hot-1", "lines": [{"sku": "HOT", "quantity": 10**9}]})).status_code == 201
            customer = (await c.post("/v1/customers", json={"name": "Bench", "profiles": [
                {"channel": "wholesale", "payment_terms": "net_30", "backorder_policy": "backorder"}]})).json()
            key = (await c.post("/v1/api-keys", json={"role": "wholesale",
                                                      "customer_id": customer["id"]})).json()["key"]
        for kind in kinds:
            token, body, idem = (key, BODIES[kind], True) if kind == "wholesale" else (ADMIN_KEY, BODIES[kind], False)
            base = [(b"content-type", b"application/json"), (b"authorization", f"Bearer {token}".encode()),
                    (b"host", b"app"), (b"content-length", str(len(body)).encode())]

            async def one() -> None:
                headers = base + [(b"idempotency-key", uuid.uuid4().hex.encode())] if idem else base
                status = await _call(app, "/v1/orders", body, headers)
                assert status == 201, status

            for _ in range(300):  # warm: caches, connections
                await one()
            cpu = time.process_time()
            for done in range(0, requests, 16):
                await asyncio.gather(*(one() for _ in range(16)))
                if done % 2000 == 0:
                    print(f"  {kind}: {done:,}/{requests:,}", file=sys.stderr, flush=True)
            out[kind] = 1e6 * (time.process_time() - cpu) / (requests // 16 * 16)
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await life
    return out


def _prepare(settings: Settings) -> None:
    """What `serve` does first: the schema, and an empty Redis rebuilt (the epoch)."""
    from engine.keys import Keys
    from onhand.redis_clients import sync_client
    from persistence.db import make_engine, migrate
    from persistence.rebuild import Rebuilder

    migrate(settings.database_url, merchant=settings.merchant)
    redis, engine = sync_client(settings.redis_url), make_engine(settings.database_url)
    try:
        Rebuilder(redis, engine, Keys(settings.merchant)).run()
    finally:
        engine.dispose()
        redis.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.inprocess", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--kinds", default="wholesale,dtc")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    workdir = scratch_dir()
    try:
        with servers(settings, workdir) as found:
            merchant = "inproc" + uuid.uuid4().hex[:6]
            settings = msgspec.structs.replace(settings, redis_url=found.redis_url,
                                               database_url=found.onhand_database_url, merchant=merchant,
                                               admin_key=ADMIN_KEY, rate_limit_wholesale=1e6)
            _prepare(settings)
            measure = _measure(settings, args.requests, args.kinds.split(","))
            # the event loop `onhand serve` runs (granian --loop uvloop)
            result = uvloop.run(measure) if args.loop == "uvloop" else asyncio.run(measure)
    finally:
        remove(workdir)
    for kind, us in result.items():
        print(f"{kind}: {us:,.0f} us API CPU per POST /v1/orders (in process, {args.requests:,} requests)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
