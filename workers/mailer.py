"""Sends the emails queued by the outbox apply (email_deliveries).

At send time the mailer reads the customer's profile from PostgreSQL: the
recipient is the profile's ``email`` (else the customer's), and the kind of
email must still be among the profile's ``email_notifications`` (else the
email is ``skipped``). The order's events are mailed in order, and only once
the outbox has applied everything before them (the watermark), so the
customer record an order refers to is there.

At least once: a worker killed after the SMTP server accepted a message but
before the outcome was written sends it again when the claim's lease runs
out; the Message-ID (from the event id) is the same, so receivers can drop
the copy. With no SMTP server configured, each email is written as
``<event id>.eml`` under the mail directory instead (writing it again
replaces it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiosmtplib import SMTPException
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.model import Channel, Line, Order, Policy
from notifications import emails, retry
from onhand.settings import Settings
from persistence.delivery_queue import (
    ClaimedEmail,
    EmailOutcome,
    claim_emails,
    customer_doc,
    settle_emails,
    sku_names,
)
from workers.queue_loop import QueueLoop

log = logging.getLogger("onhand.mailer")

_ADDRESS = re.compile(r"[^@\s<>,;\"']+@[^@\s<>,;\"']+")

#: Emails sent at once per loop.
CONCURRENCY = 4
#: A claim lasts this long, milliseconds (an SMTP exchange times out well before).
LEASE_MS = 120_000


def recipient_for(customer: dict[str, Any] | None, profile_id: str | None, kind: str) -> str | None:
    """The address this kind of email goes to, or None when the profile has
    not opted in to it (or there is no address)."""
    if not customer:
        return None
    profile = next((p for p in customer.get("profiles") or [] if p.get("id") == profile_id), None)
    if profile is None or kind not in (profile.get("email_notifications") or []):
        return None
    address = profile.get("email") or customer.get("email")
    # the customer's own email is free text: anything that is not one plain
    # address (a second one, a line break that would forge headers) is refused
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        return None
    return address


def slip_order(data: dict[str, Any]) -> Order:
    """The order as the event saw it, for the packing slip (engine.model.Order)."""
    o = data["order"]
    shipment = data["shipment"]
    return Order(
        id=o["id"], number=o["number"], channel=Channel(o["channel"]), policy=Policy(o["backorder_policy"]),
        version=0, updated_at_ms=0,
        header={k: o.get(k) for k in ("po_number", "ship_to", "created_at_ms", "customer_id")},
        lines=[Line(sku=l["sku"], quantity=l["quantity"], reserved=l["reserved"], backordered=l["backordered"],
                    exception=l["exception"], shipped=l["shipped"], cancelled=l["cancelled"],
                    returned=l["returned"]) for l in o["lines"]],
        shipments=[shipment | {"order_id": o["id"]}], returns=[])


class MailLoop(QueueLoop[ClaimedEmail]):
    concurrency = CONCURRENCY
    attempt_timeout_s = emails.SMTP_TIMEOUT_S

    def __init__(self, pg: AsyncEngine, settings: Settings, merchant: str, token: str,
                 watermark: Callable[[], Awaitable[tuple[int, int] | None]]):
        self.pg = pg
        self.settings = settings
        self.merchant = merchant
        self.token = token
        self.watermark = watermark
        self.smtp = emails.parse_smtp_url(settings.smtp_url) if settings.smtp_url else None
        self.window = timedelta(seconds=settings.webhook_retry_window_s)
        self.sent = self.skipped = self.failed = 0

    async def claim(self, room: int) -> list[ClaimedEmail]:
        watermark = await self.watermark()
        if watermark is None:
            return []
        async with self.pg.begin() as conn:
            return await claim_emails(conn, merchant=self.merchant, token=self.token, room=room,
                                      lease_ms=LEASE_MS, watermark=watermark)

    async def attempt(self, item: ClaimedEmail) -> EmailOutcome:
        async with self.pg.connect() as conn:
            customer = await customer_doc(conn, self.merchant, item.customer_id) if item.customer_id else None
            recipient = recipient_for(customer, item.profile_id, item.kind)
            if recipient is None:
                return EmailOutcome(item.id, "skipped", error="the profile has not opted in to this email")
            skus = sorted({line["sku"] for line in item.payload["order"]["lines"] if line.get("sku")})
            names = await sku_names(conn, self.merchant, skus)
        attachment = None
        if item.kind == emails.SHIPMENT_NOTICE:
            from api.pdf import packing_slip

            order = slip_order(item.payload)
            shipment_id = item.payload["shipment"]["id"]
            pdf = packing_slip(order, merchant=self.settings.merchant_name, names=names, shipment_id=shipment_id)
            attachment = (f"packing-slip-{order.number}-{shipment_id}.pdf", pdf)
        msg = emails.build(kind=item.kind, event_id=item.event_id, data=item.payload,
                           sender=self.settings.mail_from, recipient=recipient,
                           merchant=self.settings.merchant_name, names=names,
                           occurred_at=item.occurred_at, attachment=attachment)
        try:
            if self.smtp is None:
                emails.write_eml(self.settings.mail_path, item.event_id, msg)
            else:
                await emails.send_smtp(self.smtp, msg)
        except (SMTPException, OSError, TimeoutError) as exc:
            return self._retry(item, recipient, f"{type(exc).__name__}: {exc}"[:500])
        return EmailOutcome(item.id, "sent", recipient=recipient, message_id=msg["Message-ID"])

    def _retry(self, item: ClaimedEmail, recipient: str, error: str) -> EmailOutcome:
        if datetime.now(UTC) >= item.retry_from + self.window:
            log.error("ALARM email %s (%s) to %s failed for the whole retry window: %s",
                      item.event_id, item.kind, recipient, error)
            return EmailOutcome(item.id, "failed", recipient=recipient, error=error)
        wait = retry.backoff_ms(item.attempts, base_ms=self.settings.webhook_retry_base_ms,
                                cap_ms=self.settings.webhook_retry_cap_ms)
        return EmailOutcome(item.id, "pending", wait_ms=wait, recipient=recipient, error=error)

    async def settle(self, results: list[tuple[ClaimedEmail, EmailOutcome | BaseException]]) -> None:
        outcomes = []
        for item, outcome in results:
            if isinstance(outcome, BaseException):
                log.error("email %s (%s) failed unexpectedly: %r", item.event_id, item.kind, outcome)
                outcome = self._retry(item, "", f"internal error: {outcome!r}"[:500])
            outcomes.append(outcome)
        async with self.pg.begin() as conn:
            await settle_emails(conn, token=self.token, outcomes=outcomes)
        for o in outcomes:
            if o.status == "sent":
                self.sent += 1
            elif o.status == "skipped":
                self.skipped += 1
            else:
                self.failed += 1
