"""Run the emulator: in a background thread for tests, or from the command line.

with EmulatorServer(webhook_url=receiver_url, retry_schedule_s=(0.05,) * 8) as emu:
    emu.client.seed_products([{"sku": "MUG", "available": 5}])
    httpx.post(emu.graphql_url(), headers={"X-Shopify-Access-Token": emu.access_token}, ...)

python -m emulator --port 8765 --webhook-url http://127.0.0.1:8000/webhooks/shopify
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import uvicorn

from emulator import schema as schema_module
from emulator.app import create_app
from emulator.client import EmulatorClient
from emulator.config import DEFAULT_API_VERSION, SHOPIFY_RETRY_SCHEDULE_S, EmulatorConfig
from emulator.runtime import Emulator
from emulator.state import SeedProduct, Shop


class EmulatorServer:
    def __init__(
        self,
        shop: str = "test-shop.myshopify.com",
        access_token: str = "shpat_emulator_token",
        api_secret: str = "emulator_api_secret",
        webhook_url: str | None = None,
        bucket_max: float = 1000,
        restore_rate: float = 50,
        single_query_max: int = 1000,
        retry_schedule_s: Sequence[float] | None = None,
        webhook_timeout_s: float = 5.0,
        webhook_api_version: str = DEFAULT_API_VERSION,
        locations: Sequence[str] = ("Shop location",),
        products: Iterable[dict[str, Any]] | None = None,
        schema_path: str | Path | None = None,
        preload_schema: bool = True,
        currency: str = "USD",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = EmulatorConfig(
            shop=shop,
            access_token=access_token,
            api_secret=api_secret,
            webhook_url=webhook_url,
            webhook_api_version=webhook_api_version,
            bucket_max=bucket_max,
            restore_rate=restore_rate,
            single_query_max=single_query_max,
            retry_schedule_s=tuple(retry_schedule_s)
            if retry_schedule_s is not None
            else SHOPIFY_RETRY_SCHEDULE_S,
            webhook_timeout_s=webhook_timeout_s,
            currency=currency,
            locations=tuple(locations),
            schema_path=str(schema_path) if schema_path else None,
        )
        self._products = list(products or [])
        self._preload = preload_schema
        self._host = host
        self._port = port
        self.emulator: Emulator | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: EmulatorClient | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> EmulatorServer:
        if self._preload:
            schema_module.preload(self.config.schema_path)
        self.emulator = Emulator(self.config)
        self.emulator.seed([msgspec.convert(p, SeedProduct) for p in self._products])
        # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto
        # is IPPROTO_TCP, and without it every response body waits ~40 ms for Nagle.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(emulator=self.emulator),
            lifespan="on",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            assert self._server is not None
            await self._server.serve(sockets=[sock])

        self._thread = threading.Thread(
            target=asyncio.run, args=(serve(),), name=f"emulator-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("emulator server failed to start")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("emulator server did not start in time")
            time.sleep(0.005)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout_s)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = self._loop = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- access -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def graphql_url(self, version: str = DEFAULT_API_VERSION) -> str:
        return f"{self.base_url}/admin/api/{version}/graphql.json"

    @property
    def access_token(self) -> str:
        return self.config.access_token

    @property
    def api_secret(self) -> str:
        return self.config.api_secret

    @property
    def shop_domain(self) -> str:
        return self.config.shop

    @property
    def client(self) -> EmulatorClient:
        if self._client is None:
            self._client = EmulatorClient(self.base_url, access_token=self.access_token)
        return self._client

    @property
    def shop(self) -> Shop:
        """Live state; hold `shop.lock` while reading it from another thread."""
        assert self.emulator is not None, "server not started"
        return self.emulator.shop

    def state(self) -> dict[str, Any]:
        """A consistent snapshot taken without HTTP."""
        return self.shop.snapshot()

    def wait_for_schema(self) -> float:
        """Block until the schema is built; returns its build time in seconds."""
        return schema_module.load_schema(self.config.schema_path).build_seconds


# -- command line --------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emulator", description="Local Shopify Admin API emulator"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--shop", default="test-shop.myshopify.com")
    p.add_argument("--access-token", default="shpat_emulator_token")
    p.add_argument("--api-secret", default="emulator_api_secret")
    p.add_argument("--webhook-url", default=None)
    p.add_argument("--webhook-api-version", default=DEFAULT_API_VERSION)
    p.add_argument(
        "--seed-file", type=Path, default=None, help="JSON: [products] or {locations, products}"
    )
    p.add_argument("--bucket-max", type=float, default=1000)
    p.add_argument("--restore-rate", type=float, default=50)
    p.add_argument("--schema", type=Path, default=None, help="SDL file (default: bundled 2026-01)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    locations: tuple[str, ...] = ("Shop location",)
    products: list[SeedProduct] = []
    if args.seed_file:
        seed = msgspec.json.decode(args.seed_file.read_bytes())
        if isinstance(seed, dict):
            locations = tuple(seed.get("locations") or locations)
            seed = seed.get("products") or []
        products = msgspec.convert(seed, list[SeedProduct])
    config = EmulatorConfig(
        shop=args.shop,
        access_token=args.access_token,
        api_secret=args.api_secret,
        webhook_url=args.webhook_url,
        webhook_api_version=args.webhook_api_version,
        bucket_max=args.bucket_max,
        restore_rate=args.restore_rate,
        locations=locations,
        schema_path=str(args.schema) if args.schema else None,
    )
    emulator = Emulator(config)
    emulator.seed(products)
    schema_module.preload(config.schema_path)
    print(
        f"Shopify emulator for {config.shop} on http://{args.host}:{args.port}"
        f" (GraphQL: /admin/api/{DEFAULT_API_VERSION}/graphql.json, control: /_emulator/state)",
        file=sys.stderr,
    )
    uvicorn.run(create_app(emulator=emulator), host=args.host, port=args.port, log_level="info")
    return 0
