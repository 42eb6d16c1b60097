"""The delivery queues in PostgreSQL: webhook deliveries and emails.

Claiming is a short transaction. For webhooks it first locks the merchant's
enabled endpoints that have due work and are not paused after a failure
(``FOR NO KEY UPDATE SKIP LOCKED``: two workers never claim for one endpoint
at once, and the outbox apply's foreign key checks are not blocked), then
claims, per endpoint, up to a batch (``webhook_endpoint_batch``, less what
this worker already holds; one, a probe, for an endpoint whose last attempt
failed), and nothing for an endpoint another worker holds leases on: one
worker sends to an endpoint at a time. A claim is a lease
(``claimed_until``): a worker killed mid-delivery loses nothing, the lease
runs out and another worker delivers again, with the same ``webhook-id``.
Every per-endpoint read probes an index (due: endpoint, next attempt, id;
held: the claimed rows; order: endpoint, order, position), so a claim's
cost does not grow with an endpoint's backlog.

A delivery is due when its time has come and it is the oldest pending one of
its order for that endpoint (position: outbox entry, then rank), so an
order's events reach an endpoint in order; a later one waits while an
earlier one is retried. And only events whose outbox entry is below the
*watermark* are claimed: the oldest entry still in the outbox stream (every
entry before it has been applied or dead-lettered), so an event never
overtakes an earlier one of its order that a concurrent batch has not
committed yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

#: The watermark when the outbox is empty: everything is applied.
OPEN = (2**62, 0)

_LOCK_ENDPOINTS = text("""
SELECT e.id, e.failures FROM webhook_endpoints e
WHERE e.merchant_id = :merchant AND e.enabled
  AND (e.paused_until IS NULL OR e.paused_until <= now())
  AND EXISTS (SELECT 1 FROM webhook_deliveries d
              WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= now())
ORDER BY e.id
FOR NO KEY UPDATE SKIP LOCKED
""")

# Per endpoint: its live leases (the claimed-rows index: no backlog read);
# an endpoint another worker holds leases on is left to that worker. Then
# its due candidates in (next_attempt_at, id) order from the due index, each
# checked against the order index (one probe: is an earlier delivery of its
# order still pending?), up to the endpoint's limit less what it holds.
_DUE_WEBHOOKS = text("""
SELECT c.id
FROM unnest(CAST(:endpoints AS text[]), CAST(:limits AS integer[])) AS ep(id, lim)
CROSS JOIN LATERAL (
    SELECT count(*) AS n, coalesce(bool_or(h.claimed_by <> :token), false) AS taken
    FROM webhook_deliveries h
    WHERE h.endpoint_id = ep.id AND h.status = 'pending' AND h.claimed_by IS NOT NULL
      AND h.claimed_until > now()
) held
CROSS JOIN LATERAL (
    SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
    WHERE d.endpoint_id = ep.id AND d.status = 'pending' AND d.next_attempt_at <= now()
      AND (d.claimed_until IS NULL OR d.claimed_until <= now())
      AND (d.entry_ms, d.entry_seq) < (:wm_ms, :wm_seq)
      AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries p
          WHERE p.endpoint_id = d.endpoint_id AND p.order_id = d.order_id
            AND p.status = 'pending'
            AND (p.entry_ms, p.entry_seq, p.rank) < (d.entry_ms, d.entry_seq, d.rank))
    ORDER BY d.next_attempt_at, d.id
    LIMIT greatest(ep.lim - held.n, 0)
) c
WHERE NOT held.taken
ORDER BY c.next_attempt_at, c.id
LIMIT :room
""")

_CLAIM_WEBHOOKS = text("""
UPDATE webhook_deliveries d
SET claimed_until = now() + CAST(:lease_ms AS bigint) * interval '1 millisecond',
    claimed_by = :token, attempts = d.attempts + 1, last_attempt_at = now()
FROM webhook_endpoints ep, notification_events ev
WHERE d.id = ANY(CAST(:ids AS bigint[])) AND d.status = 'pending'
  AND (d.claimed_until IS NULL OR d.claimed_until <= now())
  AND ep.id = d.endpoint_id AND ev.merchant_id = d.merchant_id AND ev.id = d.event_id
RETURNING d.id, d.endpoint_id, d.event_id, d.attempts, d.retry_from, ep.url, ep.secret,
          ev.type, ev.payload, ev.occurred_at, ep.failures
""")

#: Claimed deliveries given back unsent (their endpoint failed meanwhile, or
#: their lease would run out before an attempt could end): the claim's
#: attempt is taken back.
_RELEASE_WEBHOOKS = text("""
UPDATE webhook_deliveries d
SET claimed_until = NULL, claimed_by = NULL, attempts = greatest(d.attempts - 1, 0)
WHERE d.id = ANY(CAST(:ids AS bigint[])) AND d.claimed_by = :token AND d.status = 'pending'
""")

#: An endpoint's health after a batch of attempts: a success clears its
#: failures; a batch of failures only counts one more and pauses it.
_ENDPOINT_HEALTH = text("""
UPDATE webhook_endpoints e
SET failures = CASE WHEN u.ok THEN 0 ELSE e.failures + 1 END,
    paused_until = CASE WHEN u.ok THEN NULL ELSE now() + u.wait_ms * interval '1 millisecond' END
FROM unnest(CAST(:ids AS text[]), CAST(:oks AS boolean[]), CAST(:waits AS bigint[])) AS u(id, ok, wait_ms)
WHERE e.id = u.id
""")

_SETTLE_WEBHOOKS = text("""
UPDATE webhook_deliveries d
SET status = u.status,
    next_attempt_at = CASE WHEN u.status = 'pending'
                           THEN now() + u.wait_ms * interval '1 millisecond'
                           ELSE d.next_attempt_at END,
    delivered_at = CASE WHEN u.status = 'delivered' THEN now() ELSE d.delivered_at END,
    claimed_until = NULL, claimed_by = NULL,
    last_status_code = u.code, last_error = u.error, last_latency_ms = u.latency_ms
FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:waits AS bigint[]),
            CAST(:codes AS integer[]), CAST(:errors AS text[]), CAST(:latencies AS integer[]))
     AS u(id, status, wait_ms, code, error, latency_ms)
WHERE d.id = u.id AND d.claimed_by = :token AND d.status = 'pending'
RETURNING d.id, d.status, d.endpoint_id, d.event_id, d.attempts, d.merchant_id
""")

_DEAD_LETTER = text("""
INSERT INTO webhook_dead_letters (merchant_id, endpoint_id, delivery_id, event_id, attempts,
                                  last_status_code, last_error)
SELECT d.merchant_id, d.endpoint_id, d.id, d.event_id, d.attempts, d.last_status_code, d.last_error
FROM webhook_deliveries d WHERE d.id = ANY(CAST(:ids AS bigint[]))
""")

_DISABLE = text("""
UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'dead_letter',
    disabled_at = now(), updated_at = now()
WHERE merchant_id = :merchant AND id = ANY(CAST(:endpoints AS text[])) AND enabled
""")


@dataclass(frozen=True)
class ClaimedWebhook:
    id: int
    endpoint_id: str
    event_id: str
    #: Attempts including this one.
    attempts: int
    retry_from: datetime
    url: str
    secret: str
    type: str
    payload: dict[str, Any]
    occurred_at: datetime
    #: The endpoint's failed attempts in a row when this was claimed.
    endpoint_failures: int = 0


@dataclass(frozen=True)
class Outcome:
    id: int
    #: delivered | pending (retry after wait_ms) | dead
    status: str
    wait_ms: int = 0
    code: int | None = None
    error: str | None = None
    latency_ms: int | None = None


async def claim_webhooks(conn: AsyncConnection, *, merchant: str, token: str, room: int,
                         per_endpoint: int, lease_ms: int,
                         watermark: tuple[int, int]) -> list[ClaimedWebhook]:
    """Claims up to ``room`` due deliveries (in the caller's transaction,
    which should commit at once: it holds the endpoints' locks): per endpoint
    at most ``per_endpoint`` held at once by this worker (an endpoint whose
    last attempt failed: one, a probe), none for an endpoint another worker
    holds leases on or that is paused after a failure."""
    if room <= 0:
        return []
    endpoints = (await conn.execute(_LOCK_ENDPOINTS, {"merchant": merchant})).all()
    if not endpoints:
        return []
    ids = list((await conn.execute(_DUE_WEBHOOKS, {
        "endpoints": [e.id for e in endpoints],
        "limits": [1 if e.failures else per_endpoint for e in endpoints],
        "token": token, "room": room, "wm_ms": watermark[0], "wm_seq": watermark[1]})).scalars())
    if not ids:
        return []
    rows = (await conn.execute(_CLAIM_WEBHOOKS, {"ids": ids, "token": token, "lease_ms": lease_ms})).all()
    return sorted((ClaimedWebhook(*row) for row in rows), key=lambda c: c.id)


async def release_webhooks(conn: AsyncConnection, *, token: str, ids: list[int]) -> None:
    """Gives claimed deliveries back unsent (another claim takes them)."""
    if ids:
        await conn.execute(_RELEASE_WEBHOOKS, {"token": token, "ids": sorted(ids)})


async def record_endpoint_health(conn: AsyncConnection, health: dict[str, tuple[bool, int]]) -> None:
    """endpoint id -> (a delivery succeeded, pause in ms when not)."""
    if health:
        ids = sorted(health)
        await conn.execute(_ENDPOINT_HEALTH, {"ids": ids, "oks": [health[i][0] for i in ids],
                                              "waits": [health[i][1] for i in ids]})


async def settle_webhooks(conn: AsyncConnection, *, token: str, outcomes: list[Outcome]) -> list[Any]:
    """Writes attempts' outcomes (only for deliveries this worker still holds);
    dead ones get a dead-letter record and their endpoint is disabled.
    Returns the rows written (id, status, endpoint_id, event_id, attempts, merchant_id)."""
    if not outcomes:
        return []
    outcomes = sorted(outcomes, key=lambda o: o.id)
    rows = (await conn.execute(_SETTLE_WEBHOOKS, {
        "token": token, "ids": [o.id for o in outcomes], "statuses": [o.status for o in outcomes],
        "waits": [o.wait_ms for o in outcomes], "codes": [o.code for o in outcomes],
        "errors": [o.error for o in outcomes], "latencies": [o.latency_ms for o in outcomes],
    })).all()
    dead = [r for r in rows if r.status == "dead"]
    if dead:
        await conn.execute(_DEAD_LETTER, {"ids": [r.id for r in dead]})
        for merchant in sorted({r.merchant_id for r in dead}):
            await conn.execute(_DISABLE, {"merchant": merchant, "endpoints": sorted(
                {r.endpoint_id for r in dead if r.merchant_id == merchant})})
    return rows


# ---------------------------------------------------------------- emails

_CLAIM_EMAILS = text("""
UPDATE email_deliveries m
SET claimed_until = now() + CAST(:lease_ms AS bigint) * interval '1 millisecond',
    claimed_by = :token, attempts = m.attempts + 1
FROM notification_events ev
WHERE m.id IN (
    SELECT e.id FROM email_deliveries e
    WHERE e.merchant_id = :merchant AND e.status = 'pending' AND e.next_attempt_at <= now()
      AND (e.claimed_until IS NULL OR e.claimed_until <= now())
      AND (e.entry_ms, e.entry_seq) < (:wm_ms, :wm_seq)
      AND NOT EXISTS (
          SELECT 1 FROM email_deliveries p
          WHERE p.merchant_id = e.merchant_id AND p.order_id = e.order_id AND p.status = 'pending'
            AND (p.entry_ms, p.entry_seq, p.rank) < (e.entry_ms, e.entry_seq, e.rank))
    ORDER BY e.next_attempt_at, e.id
    LIMIT :room
    FOR UPDATE SKIP LOCKED)
  AND ev.merchant_id = m.merchant_id AND ev.id = m.event_id
RETURNING m.id, m.event_id, m.kind, m.customer_id, m.profile_id, m.attempts, m.retry_from,
          ev.type, ev.payload, ev.occurred_at
""")

_SETTLE_EMAILS = text("""
UPDATE email_deliveries m
SET status = u.status,
    next_attempt_at = CASE WHEN u.status = 'pending'
                           THEN now() + u.wait_ms * interval '1 millisecond'
                           ELSE m.next_attempt_at END,
    sent_at = CASE WHEN u.status = 'sent' THEN now() ELSE m.sent_at END,
    recipient = coalesce(u.recipient, m.recipient), message_id = coalesce(u.message_id, m.message_id),
    claimed_until = NULL, claimed_by = NULL, last_error = u.error
FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:waits AS bigint[]),
            CAST(:recipients AS text[]), CAST(:message_ids AS text[]), CAST(:errors AS text[]))
     AS u(id, status, wait_ms, recipient, message_id, error)
WHERE m.id = u.id AND m.claimed_by = :token AND m.status = 'pending'
RETURNING m.id, m.status
""")


@dataclass(frozen=True)
class ClaimedEmail:
    id: int
    event_id: str
    kind: str
    customer_id: str | None
    profile_id: str | None
    attempts: int
    retry_from: datetime
    type: str
    payload: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True)
class EmailOutcome:
    id: int
    #: sent | skipped | pending (retry) | failed (window over)
    status: str
    wait_ms: int = 0
    recipient: str | None = None
    message_id: str | None = None
    error: str | None = None


async def claim_emails(conn: AsyncConnection, *, merchant: str, token: str, room: int, lease_ms: int,
                       watermark: tuple[int, int]) -> list[ClaimedEmail]:
    if room <= 0:
        return []
    rows = (await conn.execute(_CLAIM_EMAILS, {
        "merchant": merchant, "token": token, "room": room, "lease_ms": lease_ms,
        "wm_ms": watermark[0], "wm_seq": watermark[1]})).all()
    return sorted((ClaimedEmail(*row) for row in rows), key=lambda c: c.id)


async def settle_emails(conn: AsyncConnection, *, token: str, outcomes: list[EmailOutcome]) -> list[Any]:
    if not outcomes:
        return []
    outcomes = sorted(outcomes, key=lambda o: o.id)
    return (await conn.execute(_SETTLE_EMAILS, {
        "token": token, "ids": [o.id for o in outcomes], "statuses": [o.status for o in outcomes],
        "waits": [o.wait_ms for o in outcomes], "recipients": [o.recipient for o in outcomes],
        "message_ids": [o.message_id for o in outcomes], "errors": [o.error for o in outcomes],
    })).all()


async def customer_doc(conn: AsyncConnection, merchant: str, customer_id: str) -> dict[str, Any] | None:
    """The merchant's customer record (with its profiles) as PostgreSQL has it."""
    return (await conn.execute(text("SELECT doc FROM customers WHERE merchant_id = :m AND id = :id"),
                               {"m": merchant, "id": customer_id})).scalar()


async def sku_names(conn: AsyncConnection, merchant: str, skus: list[str]) -> dict[str, str | None]:
    rows = await conn.execute(text("SELECT sku, name FROM skus WHERE merchant_id = :m "
                                   "AND sku = ANY(CAST(:skus AS text[]))"), {"m": merchant, "skus": skus})
    return {r.sku: r.name for r in rows}


#: Merchants with webhooks or emails waiting to be sent: one probe of the
#: due index per enabled endpoint, and a skip scan of the emails' (the
#: watchdog runs this every second: it must not read a backlog).
_BUSY = text("""
SELECT DISTINCT e.merchant_id FROM webhook_endpoints e
WHERE e.enabled AND EXISTS (SELECT 1 FROM webhook_deliveries d
                            WHERE d.endpoint_id = e.id AND d.status = 'pending')
UNION
SELECT m.id FROM (
    WITH RECURSIVE m AS (
        SELECT min(merchant_id) AS id FROM email_deliveries WHERE status = 'pending'
        UNION ALL
        SELECT (SELECT min(merchant_id) FROM email_deliveries
                WHERE status = 'pending' AND merchant_id > m.id)
        FROM m WHERE m.id IS NOT NULL)
    SELECT id FROM m) m
WHERE m.id IS NOT NULL
""")


def merchants_with_work(conn) -> list[str]:
    """(sync) Every merchant with a delivery pending: the watchdog starts its notify loop."""
    return sorted(conn.execute(_BUSY).scalars())
