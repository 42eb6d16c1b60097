"""What bounds the order path at 64 connections (docs/benchmarks.md, "What the
rest costs"): one `onhand serve` on its own embedded Valkey, wholesale orders
with Idempotency-Keys as in `onhand bench hotpath`, and

- ``clients``: client CPU per FCALL of an order's size, redis-py against the
  hot path's shared connection (onhand/redis_mux.py), 16 callers at once;
- ``concurrency``: orders/s with 16 to 256 connections (at 64 the path waits
  on Redis's batches more than on CPU);
- ``fsync``: orders/s with Valkey's ``appendfsync always`` and, as an
  experiment only (serve refuses it), ``everysec``: what the per-batch fsync
  costs.

    python -m loadtests.hotpath_probes [clients] [concurrency] [fsync] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

import msgspec
from redis import Redis

from loadtests import hotpath
from loadtests.hotpath import _setup_onhand, _wrk_post
from loadtests.stack import Service, remove, scratch_dir, servers
from onhand.settings import Settings

WHOLESALE = b'{"channel":"wholesale","lines":[{"sku":"HOT","quantity":1}]}'
#: An order's FCALL arguments, as the API sends them (sizes and types).
_ARGS = ["x" * 40, "f" * 64, 259200000, 1765000000000, "key:abc",
         '{"order_id":"o_123","channel":"wholesale","policy":"backorder","doc":"{}",'
         '"lines":[{"sku":"HOT","qty":1}]}', 1000, "bucket", 0.001, 1000000, 30000, "customer", "c_1234", 3]


def _say(text: str) -> None:
    print(f"[probes {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def _per_call(call, n: int = 40_000, callers: int = 16) -> float:
    for _ in range(500):
        await call()
    cpu = time.process_time()

    async def caller() -> None:
        for _ in range(n // callers):
            await call()

    await asyncio.gather(*(caller() for _ in range(callers)))
    return 1e6 * (time.process_time() - cpu) / n


async def _clients(redis_url: str) -> list[str]:
    from onhand.redis_clients import async_client
    from onhand.redis_mux import RedisMux

    script = "redis.call('INCR', KEYS[1]); return {ARGV[1], 0, '', ''}"
    sha = Redis.from_url(redis_url).script_load(script)
    args = ("EVALSHA", sha, 2, "{m:probe}:k", "{m:probe}:g", *_ARGS)
    client = async_client(redis_url, pool_size=64)
    mux = RedisMux(client)
    try:
        pooled = await _per_call(lambda: client.execute_command(*args))
        shared = await _per_call(lambda: mux.call(*args))
    finally:
        await mux.aclose()
        await client.aclose()
    return [f"client CPU per call (an order's 19 arguments, 16 callers): redis-py {pooled:.1f} us, "
            f"the shared connection {shared:.1f} us"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.hotpath_probes", description=__doc__.split("\n\n")[0])
    parser.add_argument("probes", nargs="*", default=["clients", "concurrency", "fsync"])
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    workdir = scratch_dir()
    lines: list[str] = []
    try:
        with servers(msgspec.structs.replace(settings, redis_url=None), workdir) as found:
            if "clients" in args.probes:
                import uvloop

                _say("clients")
                lines += uvloop.run(_clients(found.redis_url))
            if {"concurrency", "fsync"} & set(args.probes):
                service = Service("onhand", found, workdir, merchant="probe" + uuid.uuid4().hex[:6],
                                  worker_processes=0, extra_env={"ONHAND_RATE_LIMIT_WHOLESALE": "1000000"})
                service.start()
                redis = Redis.from_url(found.redis_url)
                try:
                    key = _setup_onhand(service)
                    _wrk_post(service.url, key, WHOLESALE, True, 3, workdir)
                    if "concurrency" in args.probes:
                        for connections in (16, 32, 64, 128, 256):
                            _say(f"concurrency: {connections} connections")
                            hotpath.CONNECTIONS = connections
                            r = _wrk_post(service.url, key, WHOLESALE, True, args.seconds, workdir)
                            lines.append(f"{connections} connections: {r.rps:,.0f} orders/s, "
                                         f"p50 {r.latency_ms.get('p50', 0):.1f} ms")
                        hotpath.CONNECTIONS = 64
                    if "fsync" in args.probes:
                        try:
                            for mode in ("always", "everysec", "always", "everysec"):
                                _say(f"fsync: appendfsync {mode}")
                                redis.config_set("appendfsync", mode)
                                r = _wrk_post(service.url, key, WHOLESALE, True, args.seconds, workdir)
                                lines.append(f"appendfsync {mode}: {r.rps:,.0f} orders/s")
                        finally:
                            redis.config_set("appendfsync", "always")
                finally:
                    redis.close()
                    service.stop()
    finally:
        remove(workdir)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
