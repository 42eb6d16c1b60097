"""Webhook endpoints, their delivery logs and replays, as the API reads and
writes them (async, PostgreSQL only: nothing here is on the order path).
Every query filters by the merchant, and by the customer for wholesale keys
(``scope``: None means every endpoint of the merchant)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.models import HttpIdempotency, WebhookDelivery, WebhookEndpoint

#: Most endpoints one customer (or the merchant-wide scope) may have.
MAX_ENDPOINTS_PER_SCOPE = 200
#: Most events one replay call queues.
MAX_REPLAY_EVENTS = 10_000

@dataclass(frozen=True)
class Scope:
    merchant: str
    #: A wholesale key's customer; None for staff keys (every endpoint).
    customer_id: str | None = None

    def endpoints(self):
        clauses = [WebhookEndpoint.merchant_id == self.merchant]
        if self.customer_id is not None:
            clauses.append(WebhookEndpoint.customer_id == self.customer_id)
        return and_(*clauses)


async def count_in_scope(conn: AsyncConnection, merchant: str, customer_id: str | None) -> int:
    where = WebhookEndpoint.customer_id.is_(None) if customer_id is None \
        else WebhookEndpoint.customer_id == customer_id
    return int(await conn.scalar(select(func.count()).select_from(WebhookEndpoint).where(
        WebhookEndpoint.merchant_id == merchant, where)))


async def create(conn: AsyncConnection, row: dict[str, Any]) -> WebhookEndpoint:
    await conn.execute(insert(WebhookEndpoint).values(row))
    return (await conn.execute(select(WebhookEndpoint).where(WebhookEndpoint.id == row["id"]))).one()


async def get(conn: AsyncConnection, scope: Scope, endpoint_id: str, *, lock: bool = False):
    stmt = select(WebhookEndpoint).where(scope.endpoints(), WebhookEndpoint.id == endpoint_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await conn.execute(stmt)).one_or_none()


async def list_endpoints(conn: AsyncConnection, scope: Scope, limit: int, offset: int) -> tuple[list, int]:
    total = int(await conn.scalar(select(func.count()).select_from(WebhookEndpoint).where(scope.endpoints())))
    rows = (await conn.execute(select(WebhookEndpoint).where(scope.endpoints())
                               .order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id.desc())
                               .limit(limit).offset(offset))).all()
    return rows, total


async def change(conn: AsyncConnection, scope: Scope, endpoint_id: str, values: dict[str, Any]):
    """Updates an endpoint; re-enabling it restarts the retry window of its
    pending deliveries (they were paused while it was disabled)."""
    before = await get(conn, scope, endpoint_id, lock=True)
    if before is None:
        return None
    if values.get("enabled") is True and not before.enabled:
        values = values | {"disabled_reason": None, "disabled_at": None, "failures": 0, "paused_until": None}
        await conn.execute(update(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending",
        ).values(retry_from=func.now(), next_attempt_at=func.now()))
    elif values.get("enabled") is False and before.enabled:
        values = values | {"disabled_reason": "api", "disabled_at": func.now()}
    await conn.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
                       .values(**values, updated_at=func.now()))
    return await get(conn, scope, endpoint_id)


async def remove(conn: AsyncConnection, scope: Scope, endpoint_id: str) -> bool:
    result = await conn.execute(delete(WebhookEndpoint).where(scope.endpoints(),
                                                              WebhookEndpoint.id == endpoint_id))
    return result.rowcount > 0


async def deliveries(conn: AsyncConnection, endpoint_id: str, *, status: str | None, limit: int,
                     offset: int) -> tuple[list, int]:
    where = [WebhookDelivery.endpoint_id == endpoint_id]
    if status is not None:
        where.append(WebhookDelivery.status == status)
    total = int(await conn.scalar(select(func.count()).select_from(WebhookDelivery).where(*where)))
    rows = (await conn.execute(select(WebhookDelivery).where(*where)
                               .order_by(WebhookDelivery.id.desc()).limit(limit).offset(offset))).all()
    return rows, total


_REPLAY = text("""
INSERT INTO webhook_deliveries (merchant_id, endpoint_id, event_id, event_type, order_id, entry_ms,
    entry_seq, rank, status, attempts, next_attempt_at, retry_from, replays, created_at)
SELECT ev.merchant_id, ep.id, ev.id, ev.type, ev.order_id, ev.entry_ms, ev.entry_seq, ev.rank,
    'pending', 0, now(), now(), 1, now()
FROM notification_events ev
JOIN webhook_endpoints ep ON ep.id = :endpoint AND ep.merchant_id = ev.merchant_id
    AND (ep.customer_id IS NULL OR ep.customer_id = ev.customer_id)
    AND ev.type = ANY(ep.event_types)
WHERE ev.merchant_id = :merchant
  AND (CAST(:event_id AS text) IS NULL OR ev.id = :event_id)
  AND (CAST(:since AS timestamptz) IS NULL OR ev.occurred_at >= :since)
  AND (CAST(:until AS timestamptz) IS NULL OR ev.occurred_at < :until)
ORDER BY ev.entry_ms, ev.entry_seq, ev.rank
LIMIT :limit
ON CONFLICT (endpoint_id, event_id) DO UPDATE SET
    status = 'pending', next_attempt_at = now(), retry_from = now(),
    replays = webhook_deliveries.replays + 1
RETURNING event_id
""")


async def replay(conn: AsyncConnection, merchant: str, endpoint_id: str, *, event_id: str | None = None,
                 since: datetime | None = None, until: datetime | None = None) -> list[str]:
    """Queues the endpoint's events (in its scope and types) again: one
    event, or those that happened in [since, until). Returns their ids."""
    rows = await conn.execute(_REPLAY, {"endpoint": endpoint_id, "merchant": merchant, "event_id": event_id,
                                        "since": since, "until": until, "limit": MAX_REPLAY_EVENTS})
    return list(rows.scalars())


# ---------------------------------------------------------------- Idempotency-Key


async def idempotent_outcome(conn: AsyncConnection, merchant: str, op_id: str) -> Any:
    """The stored, unexpired outcome of an operation id, or None. Takes a
    transaction-level lock on the id first, so a concurrent duplicate waits
    for the first request's transaction and then finds its outcome."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                       {"k": f"http-idem\n{merchant}\n{op_id}"})
    return (await conn.execute(select(HttpIdempotency).where(
        HttpIdempotency.merchant_id == merchant, HttpIdempotency.op_id == op_id,
        HttpIdempotency.expires_at > func.now()))).one_or_none()


async def store_outcome(conn: AsyncConnection, merchant: str, op_id: str, fingerprint: str, status: int,
                        body: str, ttl_s: int) -> None:
    """Stores an outcome in the caller's transaction (replacing an expired one)."""
    await conn.execute(text("""
        INSERT INTO http_idempotency (merchant_id, op_id, fingerprint, status_code, body, expires_at)
        VALUES (:merchant, :op_id, :fp, :status, :body, now() + CAST(:ttl AS bigint) * interval '1 second')
        ON CONFLICT (merchant_id, op_id) DO UPDATE SET fingerprint = excluded.fingerprint,
            status_code = excluded.status_code, body = excluded.body, expires_at = excluded.expires_at"""),
        {"merchant": merchant, "op_id": op_id, "fp": fingerprint, "status": status, "body": body,
         "ttl": ttl_s})
