"""The outbox apply's notification step: customer-facing events and their
deliveries, written in the transaction that applies the change.

:func:`apply_notifications` derives the events of each newly applied outbox
entry (notifications/events.py) and writes them; other apply steps (invoices)
add theirs with :func:`emit`. Writing an event also queues it, in the same
statement batch:

- one webhook delivery per enabled endpoint that wants it (the merchant's
  merchant-wide endpoints, and the endpoints of the event's customer,
  subscribed to its type), and
- one email when the order's profile opted in to that kind of email (or when
  the customer is not in PostgreSQL yet: the mailer checks again on sending).

Idempotent: an event's id comes from its outbox entry, order and type, and
``ON CONFLICT DO NOTHING`` on it (and on (endpoint, event) for deliveries)
means an entry applied twice creates nothing twice. The apply itself already
skips entries it has seen (applied_events).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from notifications.events import (
    BACKORDER_FILLED,
    ORDER_CREATED,
    ORDER_SHIPPED,
    RANK,
    Notice,
    derive,
    event_id,
    entry_position,
)
from persistence.bulk import insert_rows

#: Event type -> the email it may send (opt-in per profile: ``email_notifications``).
EMAIL_KINDS = {
    ORDER_CREATED: "order_confirmation",
    ORDER_SHIPPED: "shipment_notice",
    BACKORDER_FILLED: "backorder_filled",
}

EVENT_COLUMNS = (
    ("merchant_id", "text"), ("id", "text"), ("type", "text"), ("order_id", "text"),
    ("customer_id", "text"), ("profile_id", "text"), ("po_number", "text"), ("entry_id", "text"),
    ("entry_ms", "bigint"), ("entry_seq", "bigint"), ("rank", "smallint"), ("payload", "jsonb"),
    ("occurred_at", "timestamptz"),
)

_FAN_OUT = text("""
INSERT INTO webhook_deliveries (merchant_id, endpoint_id, event_id, event_type, order_id, entry_ms,
    entry_seq, rank, status, attempts, next_attempt_at, retry_from, replays, created_at)
SELECT ev.merchant_id, ep.id, ev.id, ev.type, ev.order_id, ev.entry_ms, ev.entry_seq, ev.rank,
    'pending', 0, now(), now(), 0, now()
FROM notification_events ev
JOIN webhook_endpoints ep ON ep.merchant_id = ev.merchant_id AND ep.enabled
    AND (ep.customer_id IS NULL OR ep.customer_id = ev.customer_id)
    AND ev.type = ANY(ep.event_types)
WHERE ev.merchant_id = :merchant AND ev.id = ANY(CAST(:ids AS text[]))
ORDER BY ep.id, ev.id
ON CONFLICT (endpoint_id, event_id) DO NOTHING
""")

_EMAILS = text("""
INSERT INTO email_deliveries (merchant_id, event_id, kind, order_id, customer_id, profile_id,
    entry_ms, entry_seq, rank, status, attempts, next_attempt_at, retry_from, created_at)
SELECT ev.merchant_id, ev.id, k.kind, ev.order_id, ev.customer_id, ev.profile_id, ev.entry_ms,
    ev.entry_seq, ev.rank, 'pending', 0, now(), now(), now()
FROM notification_events ev
JOIN unnest(CAST(:types AS text[]), CAST(:kinds AS text[])) AS k(type, kind) ON k.type = ev.type
WHERE ev.merchant_id = :merchant AND ev.id = ANY(CAST(:ids AS text[])) AND ev.profile_id IS NOT NULL
  AND (NOT EXISTS (SELECT 1 FROM customers c WHERE c.merchant_id = ev.merchant_id AND c.id = ev.customer_id)
       OR EXISTS (SELECT 1 FROM customers c,
                         jsonb_array_elements(coalesce(c.doc->'profiles', '[]'::jsonb)) p
                  WHERE c.merchant_id = ev.merchant_id AND c.id = ev.customer_id AND p->>'id' = ev.profile_id
                    AND coalesce(p->'email_notifications', '[]'::jsonb) ? k.kind))
ORDER BY ev.id
ON CONFLICT (merchant_id, event_id) DO NOTHING
""")


def apply_notifications(conn: Connection, merchant: str, entries: list) -> int:
    """Writes the events of newly applied outbox entries (OutboxEntry: id,
    event) and queues their deliveries. Returns how many events were new."""
    return write_events(conn, merchant, [n for e in entries for n in derive(merchant, e.id, e.event)])


def emit(conn: Connection, merchant_id: str, type_: str, order_id: str | None, customer_id: str | None,
         po_number: str | None, payload: dict[str, Any], key: str, *, occurred_at_ms: int | None = None,
         profile_id: str | None = None) -> str:
    """Adds one event from another apply step, in its transaction (e.g.
    ``invoice.created`` when the invoicing step writes an invoice).

    ``key`` is the id of the outbox entry being applied ("<ms>-<seq>"): it
    makes the call idempotent (the event id derives from it, the order id
    and the type) and orders the event after the others of that change and
    of earlier changes of the order. ``payload`` is the event's ``data``
    (by convention ``{"order": order_summary(...), "invoice": {...}}``).
    Returns the event id; emitting it again creates nothing."""
    if type_ not in RANK:
        raise ValueError(f"unknown event type {type_!r}")
    entry_position(key)  # refuses anything but an outbox entry id
    notice = Notice(
        id=event_id(merchant_id, key, order_id, type_), type=type_, entry_id=key, rank=RANK[type_],
        occurred_at_ms=occurred_at_ms if occurred_at_ms is not None else entry_position(key)[0],
        order_id=order_id, customer_id=customer_id, profile_id=profile_id, po_number=po_number,
        payload=payload)
    write_events(conn, merchant_id, [notice])
    return notice.id


def write_events(conn: Connection, merchant: str, notices: list[Notice]) -> int:
    if not notices:
        return 0
    from persistence.apply import ms_to_dt

    rows = [
        {"merchant_id": merchant, "id": n.id, "type": n.type, "order_id": n.order_id,
         "customer_id": n.customer_id, "profile_id": n.profile_id, "po_number": n.po_number,
         "entry_id": n.entry_id, "entry_ms": n.entry_ms, "entry_seq": n.entry_seq, "rank": n.rank,
         "payload": n.payload, "occurred_at": ms_to_dt(n.occurred_at_ms)}
        for n in sorted(notices, key=lambda n: n.id)
    ]
    fresh = insert_rows(conn, "notification_events", EVENT_COLUMNS, rows, conflict="merchant_id, id",
                        returning="id")
    if not fresh:
        return 0
    conn.execute(_FAN_OUT, {"merchant": merchant, "ids": fresh})
    conn.execute(_EMAILS, {"merchant": merchant, "ids": fresh, "types": list(EMAIL_KINDS),
                           "kinds": list(EMAIL_KINDS.values())})
    return len(fresh)
