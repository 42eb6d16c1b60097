"""PostgreSQL side of the documents: trading partners found by their EDI
identity, the buyer-item cross-reference, SKUs by UPC, and the outgoing
documents with their control numbers.

Imports are not the hot path, so these are plain reads of the system of
record. Every function takes a synchronous Connection; async callers use
``await conn.run_sync(fn, ...)``.

A document is recorded once per ``dedupe_key`` (e.g. ``855:<customer>:<PO>``,
``856:<shipment>``): a transaction-scoped advisory lock on the key
serialises concurrent makers, the second finds the first's row and takes no
numbers. The control numbers are taken from the counters in the same
transaction as the row that records them (persistence/counters.py), so a
number is never on two documents; the unique index on
``(merchant_id, isa_control)`` would refuse it anyway.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from persistence import counters
from persistence.models import Customer, EdiDocument, EdiItemRef, Sku

# ---------------------------------------------------------------- partners


@dataclass(frozen=True)
class Partner:
    customer: dict
    profile: dict

    @property
    def edi(self) -> dict:
        return self.profile.get("edi") or {}


def find_partners(conn: Connection, merchant: str, isa_qualifier: str, isa_id: str,
                  gs_id: str | None) -> list[Partner]:
    """The merchant's wholesale profiles whose EDI identity is this ISA
    qualifier and id (and GS id, when the profile names one)."""
    probe = {"profiles": [{"edi": {"isa_qualifier": isa_qualifier, "isa_id": isa_id}}]}
    docs = conn.execute(select(Customer.doc).where(Customer.merchant_id == merchant,
                                                   Customer.doc.contains(probe))).scalars().all()
    out = []
    for doc in docs:
        for p in doc.get("profiles") or []:
            edi = p.get("edi") or {}
            if (p.get("channel") == "wholesale" and edi.get("isa_qualifier") == isa_qualifier
                    and edi.get("isa_id") == isa_id and (not edi.get("gs_id") or edi.get("gs_id") == gs_id)):
                out.append(Partner(doc, p))
    return out


def customers_by_key(conn: Connection, merchant: str, key: str) -> list[dict]:
    """The merchant's customers whose id, import account or name is ``key``
    (case-insensitive)."""
    k = key.strip().lower()
    rows = conn.execute(select(Customer.doc).where(
        Customer.merchant_id == merchant,
        (Customer.id == key) | (func.lower(Customer.name) == k)
        | (func.lower(Customer.doc["account_number"].astext) == k)
        | (func.lower(Customer.doc["account"].astext) == k))).scalars().all()  # before account_number
    return list(rows)


# ---------------------------------------------------------------- items


def skus_by_upc(conn: Connection, merchant: str, upcs: list[str]) -> dict[str, list[str]]:
    if not upcs:
        return {}
    out: dict[str, list[str]] = {}
    for sku, upc in conn.execute(select(Sku.sku, Sku.upc).where(Sku.merchant_id == merchant,
                                                                Sku.upc.in_(sorted(set(upcs))))):
        out.setdefault(upc, []).append(sku)
    return out


def item_refs(conn: Connection, merchant: str, customer_id: str, items: list[str] | None = None) -> dict[str, str]:
    stmt = select(EdiItemRef.buyer_item, EdiItemRef.sku).where(
        EdiItemRef.merchant_id == merchant, EdiItemRef.customer_id == customer_id)
    if items is not None:
        if not items:
            return {}
        stmt = stmt.where(EdiItemRef.buyer_item.in_(sorted(set(items))))
    return dict(conn.execute(stmt.order_by(EdiItemRef.buyer_item)).all())


def put_item_refs(conn: Connection, merchant: str, customer_id: str, refs: dict[str, str]) -> None:
    if not refs:
        return
    now = datetime.now(UTC)
    rows = [{"merchant_id": merchant, "customer_id": customer_id, "buyer_item": k, "sku": v, "updated_at": now}
            for k, v in sorted(refs.items())]
    stmt = insert(EdiItemRef).values(rows)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["merchant_id", "customer_id", "buyer_item"],
        set_={"sku": stmt.excluded.sku, "updated_at": stmt.excluded.updated_at}))


def delete_item_ref(conn: Connection, merchant: str, customer_id: str, buyer_item: str) -> bool:
    result = conn.execute(delete(EdiItemRef).where(
        EdiItemRef.merchant_id == merchant, EdiItemRef.customer_id == customer_id,
        EdiItemRef.buyer_item == buyer_item))
    return bool(result.rowcount)


# ---------------------------------------------------------------- documents


@dataclass(frozen=True)
class Controls:
    """The numbers a document is written with."""

    interchange: int
    groups: list[int]
    sets: list[int]


#: Makes the document's bytes from its control numbers.
Build = Callable[[Controls], bytes]


def _lock(conn: Connection, merchant: str, key: str) -> None:
    digest = hashlib.sha256(f"{merchant}\n{key}".encode()).digest()
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": int.from_bytes(digest[:8], "big", signed=True)})


def document_by_key(conn: Connection, merchant: str, key: str) -> EdiDocument | None:
    return conn.execute(select(EdiDocument).where(EdiDocument.merchant_id == merchant,
                                                  EdiDocument.dedupe_key == key)).first()


def _slug(value: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", value or "").strip("-")[:24] or "x"


def record_document(conn: Connection, merchant: str, *, kind: str, key: str, groups: int, sets: int,
                    build: Build, customer_id: str | None = None, order_id: str | None = None,
                    shipment_id: str | None = None, po_number: str | None = None,
                    partner: str | None = None) -> tuple[EdiDocument, bool]:
    """Records the document for ``key`` once. Returns (row, made now)."""
    _lock(conn, merchant, key)
    existing = document_by_key(conn, merchant, key)
    if existing is not None and existing.status != "blocked":
        return existing, False
    isa = counters.take(conn, merchant, counters.INTERCHANGE)[0]
    controls = Controls(isa, counters.take(conn, merchant, counters.GROUP, groups),
                        counters.take(conn, merchant, counters.TRANSACTION_SET, sets))
    content = build(controls)
    now = datetime.now(UTC)
    values = {"kind": kind, "status": "ready", "customer_id": customer_id, "order_id": order_id,
              "shipment_id": shipment_id, "po_number": po_number, "partner": partner,
              "isa_control": isa, "gs_control": controls.groups[0] if controls.groups else None,
              "st_controls": controls.sets, "reason": None,
              "filename": f"{now:%Y%m%d}-{kind}-{_slug(partner)}-{isa:09d}.x12",
              "content": content.decode("ascii"), "created_at": now, "sent_at": None}
    if existing is not None:  # a blocked document that can go now
        conn.execute(update(EdiDocument).where(EdiDocument.id == existing.id).values(**values))
        return document_by_key(conn, merchant, key), True
    row = {"id": "edi_" + uuid.uuid4().hex[:16], "merchant_id": merchant, "dedupe_key": key, **values}
    conn.execute(insert(EdiDocument).values(row))
    return document_by_key(conn, merchant, key), True


def record_blocked(conn: Connection, merchant: str, *, kind: str, key: str, reason: str,
                   customer_id: str | None = None, order_id: str | None = None,
                   shipment_id: str | None = None, po_number: str | None = None,
                   partner: str | None = None, status: str = "blocked") -> EdiDocument:
    """Records why a document cannot go ("blocked"), or why it is not made
    ("skipped": the partner does not take it). No control numbers are taken."""
    _lock(conn, merchant, key)
    existing = document_by_key(conn, merchant, key)
    if existing is not None:
        if existing.status == "blocked" and existing.reason != reason:
            conn.execute(update(EdiDocument).where(EdiDocument.id == existing.id).values(reason=reason))
        return document_by_key(conn, merchant, key)
    conn.execute(insert(EdiDocument).values(
        id="edi_" + uuid.uuid4().hex[:16], merchant_id=merchant, dedupe_key=key, kind=kind, status=status,
        customer_id=customer_id, order_id=order_id, shipment_id=shipment_id, po_number=po_number,
        partner=partner, reason=reason, created_at=datetime.now(UTC), st_controls=[]))
    return document_by_key(conn, merchant, key)


def unblock(conn: Connection, merchant: str, doc_id: str) -> bool:
    """Forgets a blocked document, so its maker checks it again."""
    result = conn.execute(delete(EdiDocument).where(
        EdiDocument.merchant_id == merchant, EdiDocument.id == doc_id, EdiDocument.status == "blocked"))
    return bool(result.rowcount)


def write_outbox(conn: Connection, merchant: str, doc_id: str, folder: Path) -> Path | None:
    """Writes a recorded document to the outbox folder (atomically: a
    temporary name, fsync, rename) and marks it sent. Writing again after a
    crash between the rename and the update writes the same bytes."""
    doc = conn.execute(select(EdiDocument).where(EdiDocument.merchant_id == merchant,
                                                 EdiDocument.id == doc_id)).first()
    if doc is None or doc.content is None or doc.filename is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / doc.filename
    tmp = folder / f".{doc.filename}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(doc.content.encode("ascii"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    if doc.status != "sent":
        conn.execute(update(EdiDocument).where(EdiDocument.id == doc_id)
                     .values(status="sent", sent_at=datetime.now(UTC)))
    return path


def unsent(conn: Connection, merchant: str, limit: int = 100) -> list[str]:
    return list(conn.execute(select(EdiDocument.id).where(
        EdiDocument.merchant_id == merchant, EdiDocument.status == "ready")
        .order_by(EdiDocument.created_at).limit(limit)).scalars())


@dataclass(frozen=True)
class DocumentFilter:
    kind: str | None = None
    status: str | None = None
    customer_id: str | None = None
    order_id: str | None = None
    shipment_id: str | None = None


def list_documents(conn: Connection, merchant: str, f: DocumentFilter, limit: int,
                   offset: int) -> tuple[list[EdiDocument], int]:
    clauses = [EdiDocument.merchant_id == merchant]
    for column, value in ((EdiDocument.kind, f.kind), (EdiDocument.status, f.status),
                          (EdiDocument.customer_id, f.customer_id), (EdiDocument.order_id, f.order_id),
                          (EdiDocument.shipment_id, f.shipment_id)):
        if value is not None:
            clauses.append(column == value)
    where = and_(*clauses)
    total = int(conn.scalar(select(func.count()).select_from(EdiDocument).where(where)))
    rows = conn.execute(select(EdiDocument).where(where)
                        .order_by(EdiDocument.created_at.desc(), EdiDocument.id).limit(limit).offset(offset))
    return list(rows.all()), total


def get_document(conn: Connection, merchant: str, doc_id: str) -> EdiDocument | None:
    return conn.execute(select(EdiDocument).where(EdiDocument.merchant_id == merchant,
                                                  EdiDocument.id == doc_id)).first()


def summary(doc: EdiDocument) -> dict[str, Any]:
    return {"id": doc.id, "kind": doc.kind, "status": doc.status}
