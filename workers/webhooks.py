"""Delivers webhooks: signed, at least once, in order per order, retried.

:class:`WebhookLoop` claims due deliveries from PostgreSQL
(persistence/delivery_queue.py), sends each in its own task over async
httpx, and writes the outcomes back in batches. Bounded three ways so a slow
or dead endpoint holds up nobody else: at most ``webhook_concurrency``
attempts in flight per loop, at most ``webhook_endpoint_concurrency`` per
endpoint (counted across workers, at claim time), and every attempt ends
within ``webhook_timeout_ms`` (name resolution, connect, send, answer). A
failed attempt waits an exponential, jittered back-off; a delivery that keeps
failing past the retry window (3 days) is dead: a dead-letter record, and
its endpoint is disabled.

Each attempt resolves the endpoint's name itself, checks every address
(notifications/addresses.py) and connects to the checked one; redirects are
never followed (a 3xx is a failure) and at most MAX_RESPONSE_BYTES of an
answer are read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from notifications import retry
from notifications.addresses import UrlRefused, target
from notifications.signing import signed_headers
from onhand.settings import Settings
from persistence.delivery_queue import ClaimedWebhook, Outcome, claim_webhooks, settle_webhooks
from workers.queue_loop import QueueLoop

log = logging.getLogger("onhand.webhooks")

#: Most bytes of an answer read (the rest is not waited for), bytes.
MAX_RESPONSE_BYTES = 64 * 1024
#: A claim lasts the attempt's timeout plus this, milliseconds (outcomes are
#: written within POLL_S of the attempt's end; a lease that runs out means
#: the worker died, and another delivers again).
LEASE_MARGIN_MS = 10_000
USER_AGENT = "onhand-webhooks/1"

_encode = msgspec.json.Encoder()


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body_of(delivery: ClaimedWebhook) -> bytes:
    """The JSON sent: the Standard Webhooks envelope {id, type, timestamp, data}."""
    return _encode.encode({"id": delivery.event_id, "type": delivery.type,
                           "timestamp": rfc3339(delivery.occurred_at), "data": delivery.payload})


@dataclass(frozen=True)
class Attempt:
    ok: bool
    code: int | None
    error: str | None
    latency_ms: int


class WebhookSender:
    """One attempt of one delivery."""

    def __init__(self, *, allow_private: bool, timeout_ms: int, per_host_connections: int):
        self.allow_private = allow_private
        self.timeout_s = timeout_ms / 1000
        self.per_host = per_host_connections
        # One connection pool per endpoint: its size is the endpoint's bound,
        # and connections are made to the checked address while an https one
        # is bound to the name it was opened for (SNI, certificate), so
        # endpoints with two names on one address must not share a pool.
        self.clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, endpoint_id: str) -> httpx.AsyncClient:
        key = endpoint_id
        if key not in self.clients:
            self.clients[key] = httpx.AsyncClient(
                follow_redirects=False, trust_env=False,
                timeout=httpx.Timeout(self.timeout_s),
                limits=httpx.Limits(max_connections=self.per_host, max_keepalive_connections=self.per_host))
        return self.clients[key]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()

    async def send(self, delivery: ClaimedWebhook) -> Attempt:
        start = time.perf_counter()

        def done(ok: bool, code: int | None, error: str | None) -> Attempt:
            return Attempt(ok, code, error, int((time.perf_counter() - start) * 1000))

        body = body_of(delivery)
        try:
            async with asyncio.timeout(self.timeout_s):
                to = await target(delivery.url, allow_private=self.allow_private)
                headers = {"content-type": "application/json", "user-agent": USER_AGENT,
                           "host": to.host_header,
                           **signed_headers(delivery.secret, delivery.event_id, body.decode(), int(time.time()))}
                extensions = {"sni_hostname": to.host} if to.scheme == "https" else {}
                client = self._client(delivery.endpoint_id)
                async with client.stream("POST", to.url, content=body, headers=headers,
                                         extensions=extensions) as response:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_RESPONSE_BYTES:
                            break  # the status is what counts; the rest is not waited for
                    code = response.status_code
        except UrlRefused as exc:
            return done(False, None, f"refused: {exc}")
        except (TimeoutError, httpx.TimeoutException):
            return done(False, None, f"timed out after {self.timeout_s:g} s")
        except (httpx.HTTPError, OSError) as exc:
            return done(False, None, f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= code < 300:
            return done(True, code, None)
        if 300 <= code < 400:
            return done(False, code, "redirect not followed")
        return done(False, code, f"HTTP {code}")


class WebhookLoop(QueueLoop[ClaimedWebhook]):
    """Claims, sends and settles the deliveries of one merchant."""

    def __init__(self, pg: AsyncEngine, settings: Settings, merchant: str, token: str,
                 watermark: Callable[[], Awaitable[tuple[int, int] | None]]):
        self.pg = pg
        self.settings = settings
        self.merchant = merchant
        self.token = token
        self.watermark = watermark
        self.sender = WebhookSender(allow_private=settings.webhooks_allow_private,
                                    timeout_ms=settings.webhook_timeout_ms,
                                    per_host_connections=settings.webhook_endpoint_concurrency)
        self.concurrency = settings.webhook_concurrency
        self.attempt_timeout_s = settings.webhook_timeout_ms / 1000
        self.window = timedelta(seconds=settings.webhook_retry_window_s)
        self.lease_ms = settings.webhook_timeout_ms + LEASE_MARGIN_MS
        self.delivered = self.failed = self.dead = 0

    async def claim(self, room: int) -> list[ClaimedWebhook]:
        watermark = await self.watermark()
        if watermark is None:
            return []
        async with self.pg.begin() as conn:
            return await claim_webhooks(conn, merchant=self.merchant, token=self.token, room=room,
                                        per_endpoint=self.settings.webhook_endpoint_concurrency,
                                        lease_ms=self.lease_ms, watermark=watermark)

    async def attempt(self, item: ClaimedWebhook) -> Attempt:
        return await self.sender.send(item)

    async def close(self) -> None:
        await self.sender.close()

    def _outcome(self, delivery: ClaimedWebhook, attempt: Attempt) -> Outcome:
        if attempt.ok:
            return Outcome(delivery.id, "delivered", code=attempt.code, latency_ms=attempt.latency_ms)
        if datetime.now(UTC) >= delivery.retry_from + self.window:
            log.error("ALARM webhook %s to endpoint %s failed for the whole retry window (%d attempts, "
                      "last: %s): dead-lettered, endpoint disabled", delivery.event_id,
                      delivery.endpoint_id, delivery.attempts, attempt.error)
            return Outcome(delivery.id, "dead", code=attempt.code, error=attempt.error,
                           latency_ms=attempt.latency_ms)
        wait = retry.backoff_ms(delivery.attempts, base_ms=self.settings.webhook_retry_base_ms,
                                cap_ms=self.settings.webhook_retry_cap_ms)
        return Outcome(delivery.id, "pending", wait_ms=wait, code=attempt.code, error=attempt.error,
                       latency_ms=attempt.latency_ms)

    async def settle(self, results: list[tuple[ClaimedWebhook, Attempt | BaseException]]) -> None:
        outcomes = []
        for delivery, attempt in results:
            if isinstance(attempt, BaseException):
                log.error("webhook %s: attempt failed unexpectedly: %r", delivery.event_id, attempt)
                attempt = Attempt(False, None, f"internal error: {attempt!r}"[:500], 0)
            outcomes.append(self._outcome(delivery, attempt))
        async with self.pg.begin() as conn:
            await settle_webhooks(conn, token=self.token, outcomes=outcomes)
        for o in outcomes:
            if o.status == "delivered":
                self.delivered += 1
            elif o.status == "dead":
                self.dead += 1
            else:
                self.failed += 1
