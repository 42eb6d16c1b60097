"""Dead letters: outbox entries that kept failing (workers/outbox.py), kept
in PostgreSQL until someone acts. Staff list them, replay one (apply it again,
as the drainer would, once the cause is fixed) or discard it with a note.

A replay is idempotent like every apply: an entry that did reach PostgreSQL
after all changes nothing more. An entry that could not even be read (its
payload is not an event) can only be discarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from sqlalchemy import Connection, and_, func, select, update

from persistence.apply import OutboxEntry, apply_batch
from persistence.models import DeadLetter

#: A dead letter's states.
OPEN, REPLAYED, DISCARDED = "open", "replayed", "discarded"


class DeadLetterError(Exception):
    """Raised when a dead letter cannot be replayed or resolved (reason, detail)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Replayed:
    entry: OutboxEntry
    #: False when PostgreSQL already had the entry (nothing changed).
    applied: bool


def listing(conn: Connection, merchant: str, *, status: str | None, limit: int,
            offset: int) -> tuple[list[DeadLetter], int]:
    where = DeadLetter.merchant_id == merchant
    if status == OPEN:
        where = and_(where, DeadLetter.resolved_at.is_(None))
    elif status in (REPLAYED, DISCARDED):
        where = and_(where, DeadLetter.resolution == status)
    total = int(conn.scalar(select(func.count()).select_from(DeadLetter).where(where)))
    rows = conn.execute(select(DeadLetter).where(where).order_by(DeadLetter.created_at.desc(),
                                                                  DeadLetter.event_id)
                        .limit(limit).offset(offset)).all()
    return list(rows), total


def _open(conn: Connection, merchant: str, event_id: str) -> DeadLetter:
    row = conn.execute(select(DeadLetter).where(DeadLetter.merchant_id == merchant,
                                                DeadLetter.event_id == event_id)
                       .with_for_update()).one_or_none()
    if row is None:
        raise DeadLetterError("not_found", f"no dead letter {event_id}")
    if row.resolved_at is not None:
        raise DeadLetterError("already_resolved", f"dead letter {event_id} was {row.resolution} "
                                                  f"at {row.resolved_at.isoformat()}")
    return row


def replay(conn: Connection, merchant: str, event_id: str, *, actor: str,
           note: str | None = None) -> Replayed:
    """Applies the dead letter's event in the caller's transaction and marks
    it replayed; raises DeadLetterError when it is unreadable, resolved, or
    fails again (the transaction is then the caller's to roll back)."""
    row = _open(conn, merchant, event_id)
    try:
        event = msgspec.json.decode(row.payload)
        if not isinstance(event, dict) or "t" not in event:
            raise ValueError("not an outbox event")
    except (msgspec.DecodeError, ValueError) as exc:
        raise DeadLetterError("unreadable", f"the entry could not be read ({exc}): discard it "
                                            "with a note instead") from exc
    entry = OutboxEntry(row.event_id, event)
    try:
        with conn.begin_nested():
            applied = apply_batch(conn, [entry], merchant) == 1
    except Exception as exc:  # noqa: BLE001 - reported to staff with its cause
        raise DeadLetterError("failed_again", f"applying it failed again: {exc!r}"[:2000]) from exc
    _resolve(conn, merchant, event_id, REPLAYED, actor, note)
    return Replayed(entry, applied)


def discard(conn: Connection, merchant: str, event_id: str, *, actor: str, note: str) -> None:
    """Marks the dead letter resolved without applying it."""
    _open(conn, merchant, event_id)
    _resolve(conn, merchant, event_id, DISCARDED, actor, note)


def row(conn: Connection, merchant: str, event_id: str) -> DeadLetter:
    return conn.execute(select(DeadLetter).where(DeadLetter.merchant_id == merchant,
                                                 DeadLetter.event_id == event_id)).one()


def _resolve(conn: Connection, merchant: str, event_id: str, resolution: str, actor: str,
             note: str | None) -> None:
    conn.execute(update(DeadLetter).where(DeadLetter.merchant_id == merchant,
                                          DeadLetter.event_id == event_id).values(
        resolved_at=datetime.now(UTC), resolution=resolution, resolved_by=actor, note=note))
