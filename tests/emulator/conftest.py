"""Fixtures for the Shopify emulator tests: a started emulator and a real webhook receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from emulator import EmulatorServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"
FAST_RETRIES = [0.05] * 8


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float


@dataclass
class WebhookReceiver:
    """An HTTP endpoint that records deliveries and answers as scripted."""

    server: ThreadingHTTPServer
    deliveries: list[Delivery] = field(default_factory=list)
    # Statuses to answer in order; once used up, `default_status`.
    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    delay_s: float = 0.0
    responder: Callable[[Delivery], int] | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/webhooks/shopify"

    def answer(self, delivery: Delivery) -> int:
        with self._cond:
            self.deliveries.append(delivery)
            self._cond.notify_all()
            if self.responder is not None:
                return self.responder(delivery)
            return self.statuses.pop(0) if self.statuses else self.default_status

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.deliveries) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} deliveries, got {len(self.deliveries)}")
                self._cond.wait(remaining)
            return list(self.deliveries)

    def topics(self) -> list[str]:
        return [d.headers["x-shopify-topic"] for d in self.deliveries]


def _start_receiver() -> WebhookReceiver:
    holder: dict[str, WebhookReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            delivery = Delivery(
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                received_at=time.monotonic(),
            )
            receiver = holder["receiver"]
            status = receiver.answer(delivery)
            if receiver.delay_s:
                time.sleep(receiver.delay_s)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the emulator gave up waiting (timeout tests)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = WebhookReceiver(server=server)
    holder["receiver"] = receiver
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return receiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = _start_receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer(retry_schedule_s=FAST_RETRIES, webhook_timeout_s=1.0).start()
    yield server
    server.stop()


@pytest.fixture
def emu(emulator_server: EmulatorServer, receiver: WebhookReceiver) -> EmulatorServer:
    """The shared emulator, emptied and pointed at this test's receiver."""
    client = emulator_server.client
    client.reset()
    client.webhook_config(
        url=receiver.url, retry_schedule_s=FAST_RETRIES, timeout_s=1.0, api_version="2026-04"
    )
    client.bucket(
        maximum_available=1000, restore_rate=50, currently_available=1000, single_query_max=1000
    )
    client.drain(5)
    return emulator_server


def gql(
    server: EmulatorServer, query: str, variables: dict | None = None, version: str = "2026-04"
) -> dict:
    response = server.client.graphql(query, variables, version=version)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def graphql() -> Callable[..., dict]:
    return gql


def fixture_json(name: str) -> Any:
    import json

    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture
def load_fixture() -> Callable[[str], Any]:
    return fixture_json


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
