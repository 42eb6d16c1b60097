"""A webhook receiver for the tests: a real HTTP server (in a thread) that
verifies every delivery's Standard Webhooks signature with the
``standardwebhooks`` package, as a customer's system would, and records what
arrived. Its behaviour can be switched: answer 200, answer 500, answer
slowly, redirect, or be down (nothing listening on its port)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    webhook_id: str
    type: str
    data: dict
    at: float


@dataclass
class Receiver:
    secret: str | None = None
    #: ok | fail (500) | slow (answers 200 after slow_s) | redirect (302 to redirect_to)
    mode: str = "ok"
    slow_s: float = 10.0
    redirect_to: str = ""
    #: Every verified delivery, in arrival order (duplicates included).
    received: list[Received] = field(default_factory=list)
    #: Requests whose signature did not verify.
    forged: int = 0
    #: Requests by path (also those answered with an error).
    hits: Counter = field(default_factory=Counter)
    #: Requests that arrived while in slow mode and are still being held.
    holding: int = 0
    #: In "ok" mode: the share of requests answered 500 at random, and a
    #: random delay (0..delay_s) before answering.
    flaky: float = 0.0
    delay_s: float = 0.0
    #: Requests being answered now, and the most there ever were at once.
    in_flight: int = 0
    most_in_flight: int = 0

    def __post_init__(self):
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                with receiver.lock:
                    receiver.in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                try:
                    self._post()
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1

            def _post(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.hits[self.path] += 1
                    mode = receiver.mode
                if mode == "ok" and receiver.delay_s:
                    time.sleep(random.random() * receiver.delay_s)
                if mode == "ok" and receiver.flaky and random.random() < receiver.flaky:
                    return self._answer(500)
                if mode == "fail":
                    return self._answer(500)
                if mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", receiver.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if mode == "slow":
                    with receiver.lock:
                        receiver.holding += 1
                    time.sleep(receiver.slow_s)
                    with receiver.lock:
                        receiver.holding -= 1
                try:
                    Webhook(receiver.secret).verify(body, dict(self.headers))
                except (WebhookVerificationError, ValueError, TypeError):
                    with receiver.lock:
                        receiver.forged += 1
                    return self._answer(401)
                event = json.loads(body)
                with receiver.lock:
                    receiver.received.append(Received(self.headers["webhook-id"], event["type"],
                                                      event["data"], time.monotonic()))
                return self._answer(200)

            def _answer(self, code: int):
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the client gave up (timeout) or died: nothing to answer

        ThreadingHTTPServer.allow_reuse_address = True
        ThreadingHTTPServer.daemon_threads = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: nothing listens on the port until start() again."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    # ------------------------------------------------------------ reading

    def ids(self) -> list[str]:
        with self.lock:
            return [r.webhook_id for r in self.received]

    def unique(self) -> dict[str, Received]:
        """The first arrival of each webhook-id."""
        out: dict[str, Received] = {}
        with self.lock:
            for r in self.received:
                out.setdefault(r.webhook_id, r)
        return out

    def of_type(self, type_: str) -> list[Received]:
        return [r for r in self.unique().values() if r.type == type_]


def check_complete_and_ordered(receiver: Receiver, positions: dict[str, tuple]) -> None:
    """Every event (webhook id -> (order id, its position)) arrived, none
    forged; a duplicate repeats its webhook-id with the same content; an
    order's events first arrived in the order they happened."""
    got = receiver.unique()
    assert set(got) == set(positions), f"missing {len(set(positions) - set(got))} events"
    assert receiver.forged == 0
    with receiver.lock:
        copies = list(receiver.received)
    for r in copies:
        assert (r.type, r.data) == (got[r.webhook_id].type, got[r.webhook_id].data)
    by_order: dict[str, list] = {}
    for r in sorted(got.values(), key=lambda r: r.at):
        order_id, position = positions[r.webhook_id]
        by_order.setdefault(order_id, []).append(position)
    for order_id, seen in by_order.items():
        assert seen == sorted(seen), f"events of {order_id} first arrived out of order: {seen}"
