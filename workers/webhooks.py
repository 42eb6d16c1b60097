"""Delivers webhooks: signed, at least once, in order per order, retried.

:class:`WebhookLoop` claims due deliveries from PostgreSQL
(persistence/delivery_queue.py) a batch per endpoint ahead, sends them over
async httpx (kept-alive connections per endpoint), and writes the outcomes
back in batches while the sending goes on. Bounded so a slow or dead
endpoint holds up nobody else: at most ``webhook_concurrency`` attempts in
flight per loop, at most ``webhook_endpoint_concurrency`` per endpoint (one
worker holds an endpoint's leases at a time), and every attempt ends within
``webhook_timeout_ms`` (name resolution, connect, send, answer). A failed
attempt waits an exponential, jittered back-off, and so does its endpoint
(nothing more is claimed for it until then, then one delivery probes it); a
delivery that keeps failing past the retry window (3 days) is dead: a
dead-letter record, and its endpoint is disabled.

Each attempt resolves the endpoint's name itself, checks every address
(notifications/addresses.py) and connects to the checked one; redirects are
never followed (a 3xx is a failure) and at most MAX_RESPONSE_BYTES of an
answer are read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
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
from persistence.delivery_queue import (
    ClaimedWebhook,
    Outcome,
    claim_webhooks,
    record_endpoint_health,
    release_webhooks,
    settle_webhooks,
)
from workers.queue_loop import GATHER_S, PG_DOWN, PG_RETRY_S, POLL_S

log = logging.getLogger("onhand.webhooks")

#: Most bytes of an answer read (the rest is not waited for), bytes.
MAX_RESPONSE_BYTES = 64 * 1024
#: A claim lasts the attempt's timeout plus this, milliseconds (outcomes are
#: written within POLL_S of the attempt's end; a lease that runs out means
#: the worker died, and another delivers again).
LEASE_MARGIN_MS = 10_000
USER_AGENT = "onhand-webhooks/1"
#: Deliveries a loop may hold (claimed, queued or in flight) per attempt it
#: may have in flight (webhook_concurrency).
HELD_PER_ATTEMPT = 3

_encode = msgspec.json.Encoder()
_ssl_context: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every endpoint's client: building one
    loads the CA bundle (tens of milliseconds of CPU, blocking the event
    loop), which per endpoint and per notify slice cost more than the
    deliveries themselves."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


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
                follow_redirects=False, trust_env=False, verify=tls_context(),
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


class WebhookLoop:
    """Claims, sends and settles the deliveries of one merchant.

    One round (one PostgreSQL transaction) writes the outcomes of the
    attempts that ended since the last round, gives back what was claimed
    but not sent, records endpoints' health, and claims more: for each
    endpoint up to ``webhook_endpoint_batch`` deliveries (each the oldest
    pending one of its order, so a batch never holds two of one order), put
    on the endpoint's queue. Up to ``webhook_endpoint_concurrency`` senders
    per endpoint take from its queue over kept-alive connections while the
    next round runs: the rounds' PostgreSQL latency no longer caps an
    endpoint's rate at ``concurrency`` per round.

    An order's next event becomes claimable only once the round that writes
    its predecessor's outcome has committed, so its events still go out one
    after the other. A failed attempt stops the endpoint's queue (the rest is
    given back unsent) and pauses the endpoint (exponential backoff, probed
    one delivery at a time after the pause), so a dead endpoint's backlog is
    not tried delivery by delivery. A queued delivery whose lease would run
    out before its attempt could end is given back, not sent: a lease that
    ran out means another worker may send it, so this one must not.
    """

    def __init__(self, pg: AsyncEngine, settings: Settings, merchant: str, token: str,
                 watermark: Callable[[], Awaitable[tuple[int, int] | None]]):
        self.pg = pg
        self.settings = settings
        self.merchant = merchant
        self.token = token
        self.watermark = watermark
        self.per_endpoint = settings.webhook_endpoint_concurrency
        self.batch = max(settings.webhook_endpoint_batch, self.per_endpoint)
        self.sender = WebhookSender(allow_private=settings.webhooks_allow_private,
                                    timeout_ms=settings.webhook_timeout_ms,
                                    per_host_connections=self.per_endpoint)
        self.concurrency = settings.webhook_concurrency
        #: Most deliveries held (claimed, not yet settled) at once.
        self.held_limit = self.concurrency * HELD_PER_ATTEMPT
        self.attempt_timeout_s = settings.webhook_timeout_ms / 1000
        self.window = timedelta(seconds=settings.webhook_retry_window_s)
        self.lease_ms = settings.webhook_timeout_ms + LEASE_MARGIN_MS
        self.delivered = self.failed = self.dead = self.released = 0
        self._queues: dict[str, deque[tuple[ClaimedWebhook, float]]] = {}
        self._senders: dict[str, set[asyncio.Task]] = {}
        self._failing: set[str] = set()
        self._outcomes: list[Outcome] = []
        self._unsent: list[int] = []
        self._health: dict[str, tuple[bool, int]] = {}
        self._held = 0
        self._closing = False
        self._slots: asyncio.Semaphore | None = None
        self._progress: asyncio.Event | None = None

    # ------------------------------------------------------------ the loop

    async def run(self, deadline: float, stop: Callable[[], bool]) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)
        self._progress = asyncio.Event()
        try:
            while time.monotonic() < deadline and not stop():
                wrote = await self._round(claim=True)
                if not self._held and not wrote:
                    await asyncio.sleep(POLL_S)
                elif not (self._outcomes or self._unsent):
                    self._progress.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._progress.wait(), POLL_S)
                    await asyncio.sleep(GATHER_S)
            # wind down: what is queued goes back unsent, attempts under way end
            self._closing = True
            for queue in self._queues.values():
                while queue:
                    self._unsent.append(queue.popleft()[0].id)
            senders = [t for ts in self._senders.values() for t in ts]
            if senders:
                await asyncio.wait(senders, timeout=self.attempt_timeout_s + 1)
            await self._round(claim=False)
        finally:
            for tasks in self._senders.values():
                for task in tasks:
                    task.cancel()
            await self.sender.close()

    async def _round(self, *, claim: bool) -> int:
        """One transaction: outcomes, give-backs and health written, then a
        claim. Returns how many outcomes and give-backs were written."""
        outcomes, self._outcomes = self._outcomes, []
        unsent, self._unsent = self._unsent, []
        health, self._health = self._health, {}
        finished = len(outcomes) + len(unsent)
        room = self.held_limit - (self._held - finished)
        watermark = await self.watermark() if claim and room > 0 else None
        claimed: list[ClaimedWebhook] = []
        if not (outcomes or unsent or health or watermark is not None):
            return 0
        try:
            async with self.pg.begin() as conn:
                await settle_webhooks(conn, token=self.token, outcomes=outcomes)
                await release_webhooks(conn, token=self.token, ids=unsent)
                await record_endpoint_health(conn, health)
                if watermark is not None:
                    claimed = await claim_webhooks(conn, merchant=self.merchant, token=self.token, room=room,
                                                   per_endpoint=self.batch, lease_ms=self.lease_ms,
                                                   watermark=watermark)
        except PG_DOWN as exc:
            # the claims' leases run out and the deliveries are attempted again
            log.warning("webhooks: PostgreSQL unreachable, %d outcomes not recorded (%s)", len(outcomes), exc)
            self._held -= finished
            self._failing -= set(health)
            await asyncio.sleep(PG_RETRY_S)
            return finished
        self._held -= finished
        self._failing -= set(health)  # paused in PostgreSQL now: no claim returns them until then
        self.released += len(unsent)
        for o in outcomes:
            if o.status == "delivered":
                self.delivered += 1
            elif o.status == "dead":
                self.dead += 1
            else:
                self.failed += 1
        lease_end = time.monotonic() + self.lease_ms / 1000
        for item in claimed:
            self._held += 1
            self._queues.setdefault(item.endpoint_id, deque()).append((item, lease_end))
        for endpoint_id in {item.endpoint_id for item in claimed}:
            running = self._senders.setdefault(endpoint_id, set())
            # a sender that has returned is done() at once (its discard comes later);
            # one still running takes from the queue again before it returns
            for _ in range(self.per_endpoint - sum(not t.done() for t in running)):
                task = asyncio.create_task(self._send_queue(endpoint_id))
                running.add(task)
                task.add_done_callback(running.discard)
        return finished

    async def _send_queue(self, endpoint_id: str) -> None:
        """One of an endpoint's senders: attempts its queued deliveries, one
        at a time, until the queue is empty or the endpoint failed."""
        queue = self._queues[endpoint_id]
        assert self._slots is not None and self._progress is not None
        while queue:
            item, lease_end = queue.popleft()
            if not self._may_send(endpoint_id, lease_end):
                self._unsent.append(item.id)
                self._progress.set()
                continue
            async with self._slots:
                if not self._may_send(endpoint_id, lease_end):
                    self._unsent.append(item.id)
                    self._progress.set()
                    continue
                try:
                    attempt = await self.sender.send(item)
                except Exception as exc:  # noqa: BLE001 - recorded as a failed attempt, retried
                    log.error("webhook %s: attempt failed unexpectedly: %r", item.event_id, exc)
                    attempt = Attempt(False, None, f"internal error: {exc!r}"[:500], 0)
            self._outcomes.append(self._outcome(item, attempt))
            self._note_health(item, attempt)
            self._progress.set()

    def _may_send(self, endpoint_id: str, lease_end: float) -> bool:
        """Not while closing or after the endpoint failed; and only when the
        attempt ends (and its outcome is written) well within the lease."""
        if self._closing or endpoint_id in self._failing:
            return False
        return time.monotonic() + self.attempt_timeout_s + LEASE_MARGIN_MS / 2000 <= lease_end

    def _note_health(self, item: ClaimedWebhook, attempt: Attempt) -> None:
        endpoint_id = item.endpoint_id
        if attempt.ok:
            # only a recovering endpoint's success is written (a healthy one's is no news)
            if item.endpoint_failures or endpoint_id in self._health:
                self._health[endpoint_id] = (True, 0)
            return
        self._failing.add(endpoint_id)
        if self._health.get(endpoint_id, (False, 0))[0]:
            return  # another delivery to it succeeded in this round
        wait = retry.backoff_ms(item.endpoint_failures + 1, base_ms=self.settings.webhook_retry_base_ms,
                                cap_ms=self.settings.webhook_retry_cap_ms)
        self._health[endpoint_id] = (False, wait)

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
