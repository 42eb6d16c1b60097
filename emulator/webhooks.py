"""Webhook signing and delivery the way Shopify does it.

Each event becomes one webhook with its own X-Shopify-Webhook-Id; retries and
duplicates reuse it, and reuse the event id. A delivery counts as failed when the
receiver answers outside 2xx (redirects included) or takes longer than the
timeout (5 s at Shopify); it is then retried on the configured schedule.

Delivery modes: `immediate` (right away, in the background), `delay_ms` (after a
delay) and `hold` (wait for `flush`, which can shuffle, duplicate, spread and
filter, to reproduce the orderings a receiver must survive).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import httpx
import msgspec

from emulator.outbox import AttemptRecord, WebhookRecord

if TYPE_CHECKING:
    from emulator.state import Shop

DeliveryMode = Literal["immediate", "delay_ms", "hold"]
SignMode = Literal["valid", "bad", "none"]

# Topics whose deliveries carry X-Shopify-Order-Id and X-Shopify-Test.
_ORDER_TOPIC_PREFIX = "orders/"


def sign(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def triggered_at() -> str:
    # Shopify's captures show nanosecond precision with a Z suffix.
    ns = time.time_ns()
    moment = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ns % 1_000_000_000:09d}Z"


def new_record(
    shop: Shop,
    topic: str,
    body: bytes,
    *,
    order_id: int | None = None,
    test: bool | None = None,
    synthetic: bool = False,
    shop_domain: str | None = None,
    api_version: str | None = None,
) -> WebhookRecord:
    return WebhookRecord(
        webhook_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        topic=topic,
        body=body,
        triggered_at=triggered_at(),
        api_version=api_version or shop.config.webhook_api_version,
        shop_domain=shop_domain or shop.config.shop,
        order_id=order_id,
        test=test,
        seq=shop.outbox.next_seq(),
        synthetic=synthetic,
    )


def headers_for(record: WebhookRecord, signature: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": record.topic,
    }
    if signature is not None:
        headers["X-Shopify-Hmac-Sha256"] = signature
    headers.update(
        {
            "X-Shopify-Shop-Domain": record.shop_domain,
            "X-Shopify-API-Version": record.api_version,
            "X-Shopify-Webhook-Id": record.webhook_id,
            "X-Shopify-Triggered-At": record.triggered_at,
            "X-Shopify-Event-Id": record.event_id,
        }
    )
    if record.topic.startswith(_ORDER_TOPIC_PREFIX) and record.order_id is not None:
        headers["X-Shopify-Order-Id"] = str(record.order_id)
        headers["X-Shopify-Test"] = "true" if record.test else "false"
    headers["Accept"] = "*/*"
    headers["User-Agent"] = "Shopify-Captain-Hook"
    return headers


class FlushOptions(msgspec.Struct, kw_only=True):
    shuffle: bool = False
    # Each delivery is sent between min and max times in total.
    duplicates: tuple[int, int] | None = None
    concurrency: int = 1
    # Spread the sends evenly over this many seconds.
    spread_s: float = 0.0
    topics: list[str] | None = None
    order_ids: list[int] | None = None
    seed: int | None = None
    # Wait for the first attempt of every send before answering.
    wait: bool = True


class SendOutcome(msgspec.Struct, kw_only=True):
    webhook_id: str
    event_id: str
    topic: str
    copy: int
    status_code: int | None
    ok: bool
    latency_ms: float
    error: str | None = None


class Dispatcher:
    """Delivers the shop's outbox; lives on the server's event loop."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.mode: DeliveryMode = "immediate"
        self.delay_ms = 0
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # No pooling limits: Shopify opens as many connections as it needs.
        self._client = httpx.AsyncClient(
            follow_redirects=False, limits=httpx.Limits(max_connections=None)
        )

    async def stop(self) -> None:
        await self.cancel_all()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no delivery (first attempts or retries) is pending."""
        deadline = time.monotonic() + timeout_s
        while self._tasks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.wait(list(self._tasks), timeout=remaining)
        return True

    @property
    def pending(self) -> int:
        return len(self._tasks)

    # -- queueing ---------------------------------------------------------------------

    def enqueue(self, record: WebhookRecord) -> None:
        """Called on the loop after a shop event has added `record` to the outbox."""
        self.shop.outbox.add(record)
        if self.mode == "hold" or not self.shop.config.webhook_url:
            return
        delay = self.delay_ms / 1000 if self.mode == "delay_ms" else 0.0
        record.status = "sending"
        self._spawn(self._deliver(record, copy=1, delay_s=delay))

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- flushing ---------------------------------------------------------------------

    async def flush(self, options: FlushOptions) -> list[SendOutcome]:
        if not self.shop.config.webhook_url:
            raise RuntimeError("no webhook url configured")
        rng = random.Random(options.seed)
        with self.shop.lock:
            records = [
                r
                for r in self.shop.outbox.queued()
                if (options.topics is None or r.topic in options.topics)
                and (options.order_ids is None or r.order_id in options.order_ids)
            ]
            for record in records:
                record.status = "sending"
        plan: list[tuple[WebhookRecord, int]] = []
        for record in records:
            copies = rng.randint(*options.duplicates) if options.duplicates else 1
            plan.extend((record, copy) for copy in range(1, max(copies, 1) + 1))
        if options.shuffle:
            rng.shuffle(plan)
        gate = asyncio.Semaphore(max(options.concurrency, 1))
        step = options.spread_s / (len(plan) - 1) if options.spread_s and len(plan) > 1 else 0.0
        started = time.monotonic()

        async def send(index: int, record: WebhookRecord, copy: int) -> SendOutcome:
            wait = started + index * step - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            async with gate:
                outcome = await self._attempt(record, copy, attempt=1)
            if not outcome.ok:
                self._spawn(self._retry(record, copy))
            return outcome

        sends = [self._spawn(send(i, r, c)) for i, (r, c) in enumerate(plan)]
        if not options.wait:
            return []
        return list(await asyncio.gather(*sends))

    # -- delivery ---------------------------------------------------------------------

    async def _deliver(self, record: WebhookRecord, copy: int, delay_s: float) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        outcome = await self._attempt(record, copy, attempt=1)
        if not outcome.ok:
            await self._retry(record, copy)

    async def _retry(self, record: WebhookRecord, copy: int) -> None:
        for number, gap in enumerate(self.shop.config.retry_schedule_s, start=2):
            await asyncio.sleep(gap)
            outcome = await self._attempt(record, copy, attempt=number)
            if outcome.ok:
                return
        with self.shop.lock:
            if record.status != "delivered":
                record.status = "failed"

    async def _attempt(
        self,
        record: WebhookRecord,
        copy: int,
        attempt: int,
        *,
        signature: str | Literal[False] | None = False,
        url: str | None = None,
    ) -> SendOutcome:
        assert self._client is not None, "dispatcher not started"
        if signature is False:
            signature = sign(self.shop.config.api_secret, record.body)
        target = url or self.shop.config.webhook_url or ""
        status: int | None = None
        error: str | None = None
        sent_at = time.time()
        began = time.perf_counter()
        try:
            response = await self._client.post(
                target,
                content=record.body,
                headers=headers_for(record, signature),
                timeout=self.shop.config.webhook_timeout_s,
            )
            status = response.status_code
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = (time.perf_counter() - began) * 1000
        ok = status is not None and 200 <= status < 300
        with self.shop.lock:
            record.attempts += 1
            self.shop.outbox.attempts.append(
                AttemptRecord(
                    webhook_id=record.webhook_id,
                    event_id=record.event_id,
                    topic=record.topic,
                    copy=copy,
                    attempt=attempt,
                    status_code=status,
                    ok=ok,
                    latency_ms=round(latency_ms, 3),
                    sent_at=sent_at,
                    error=error,
                    order_id=record.order_id,
                    synthetic=record.synthetic,
                )
            )
            if ok and record.status != "delivered":
                record.status = "delivered"
                record.delivered_at = time.time()
                self.shop.ledger.settle_webhook(record.webhook_id)
        return SendOutcome(
            webhook_id=record.webhook_id,
            event_id=record.event_id,
            topic=record.topic,
            copy=copy,
            status_code=status,
            ok=ok,
            latency_ms=round(latency_ms, 3),
            error=error,
        )

    async def send_custom(
        self,
        record: WebhookRecord,
        sign_mode: SignMode,
        url: str | None = None,
    ) -> SendOutcome:
        """One attempt, no retries: for receivers' negative tests."""
        if sign_mode == "valid":
            signature: str | None = sign(self.shop.config.api_secret, record.body)
        elif sign_mode == "bad":
            signature = sign(self.shop.config.api_secret + "-wrong", record.body)
        else:
            signature = None
        with self.shop.lock:
            self.shop.outbox.add(record)
            record.status = "sending"
        outcome = await self._attempt(record, 1, 1, signature=signature, url=url)
        with self.shop.lock:
            if not outcome.ok:
                record.status = "failed"
        return outcome
