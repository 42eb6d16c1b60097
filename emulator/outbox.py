"""Webhooks waiting to be delivered, and every delivery attempt made."""

from __future__ import annotations

from typing import Literal

import msgspec

WebhookStatus = Literal["queued", "sending", "delivered", "failed"]


class WebhookRecord(msgspec.Struct, kw_only=True):
    webhook_id: str
    event_id: str
    topic: str
    body: bytes
    triggered_at: str
    api_version: str
    shop_domain: str
    order_id: int | None = None
    test: bool | None = None
    seq: int
    status: WebhookStatus = "queued"
    delivered_at: float | None = None
    attempts: int = 0
    # Synthetic webhooks come from the negative-test sender, not from a shop event.
    synthetic: bool = False


class AttemptRecord(msgspec.Struct, kw_only=True):
    webhook_id: str
    event_id: str
    topic: str
    copy: int
    attempt: int
    status_code: int | None
    ok: bool
    latency_ms: float
    sent_at: float
    error: str | None = None
    order_id: int | None = None
    synthetic: bool = False


class Outbox:
    def __init__(self) -> None:
        self.records: dict[str, WebhookRecord] = {}
        self.attempts: list[AttemptRecord] = []
        self._seq = 0

    def add(self, record: WebhookRecord) -> WebhookRecord:
        self.records[record.webhook_id] = record
        return record

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def queued(self) -> list[WebhookRecord]:
        return sorted(
            (r for r in self.records.values() if r.status == "queued"), key=lambda r: r.seq
        )
