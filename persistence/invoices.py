"""Invoices: one per shipment of a wholesale order, made when the shipment's
outbox event reaches PostgreSQL, with the due date from the order's payment
terms (net 30: 30 days after the invoice date, which is the ship date).

Idempotent: the invoice is keyed by the shipment (``UNIQUE (merchant_id,
shipment_id)``) and its id is derived from it; an event applied once more is
skipped before (``applied_events``) and would be ignored here anyway. Its
number comes from the ``invoice`` counter in the same transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, and_, func, select
from sqlalchemy.dialects.postgresql import insert

from engine.model import order_from_snapshot
from persistence import counters
from notifications.events import INVOICE_CREATED, order_summary
from persistence import notifications
from persistence.models import Invoice

NET_DAYS = {"prepaid": 0, "net_15": 15, "net_30": 30, "net_60": 60, "net_90": 90}
CENT = Decimal("0.01")


def invoice_id(merchant: str, shipment_id: str) -> str:
    return "inv_" + hashlib.sha256(f"{merchant}\n{shipment_id}".encode()).hexdigest()[:16]


def due_date(invoice_date: date, terms: str | None) -> date:
    """The invoice date plus the terms' net days (no terms: due at once)."""
    return invoice_date + timedelta(days=NET_DAYS.get(terms or "", 0))


def _price(value: Any) -> Decimal | None:
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return price if price.is_finite() else None


def invoice_lines(shipment: dict, header: dict) -> list[dict]:
    """Per shipped order line: SKU, the order line, units, unit price and amount."""
    statics = header.get("lines") or []
    out = []
    for line in shipment.get("lines") or []:
        idx = int(line.get("line", -1))
        static = statics[idx] if 0 <= idx < len(statics) else {}
        price = _price(static.get("unit_price")) if static.get("unit_price") is not None else None
        qty = int(line["quantity"])
        amount = (price * qty).quantize(CENT, rounding=ROUND_HALF_UP) if price is not None else None
        out.append({"sku": line["sku"], "line": idx, "quantity": qty,
                    "unit_price": None if price is None else format(price, "f"),
                    "amount": None if amount is None else format(amount, "f")})
    return out


def create_invoices(conn: Connection, merchant: str, entries: list) -> list[str]:
    """Invoices for the shipments of wholesale orders in ``entries`` (outbox
    entries being applied). Returns the ids of the invoices created."""
    wanted = []
    for entry in entries:
        ev = entry.event
        shipment = ev.get("shipment")
        if ev.get("t") != "order.shipped" or not isinstance(shipment, dict):
            continue
        snap = next((o for o in ev.get("orders") or [] if o.get("id") == shipment.get("order_id")), None)
        if snap is None:
            continue
        order = order_from_snapshot(snap)
        if order.channel.value != "wholesale":
            continue
        wanted.append((shipment, order, ev["at"], entry.id))
    if not wanted:
        return []
    numbers = counters.take(conn, merchant, counters.INVOICE, len(wanted))
    created = []
    for (shipment, order, at, entry_id), number in zip(wanted, numbers, strict=True):
        header = order.header
        shipped_ms = shipment.get("shipped_at_ms") or at
        day = datetime.fromtimestamp(shipped_ms / 1000, tz=UTC).date()
        lines = invoice_lines(shipment, header)
        total = sum((Decimal(x["amount"]) for x in lines if x["amount"] is not None), Decimal(0))
        row = {
            "id": invoice_id(merchant, shipment["id"]), "merchant_id": merchant, "number": number,
            "shipment_id": shipment["id"], "order_id": shipment["order_id"],
            "customer_id": header.get("customer_id"), "po_number": header.get("po_number"),
            "payment_terms": header.get("payment_terms"), "currency": header.get("currency") or "USD",
            "invoice_date": day, "due_date": due_date(day, header.get("payment_terms")),
            "total": total.quantize(CENT), "lines": lines,
        }
        new = conn.execute(insert(Invoice).values(row).on_conflict_do_nothing(
            index_elements=["merchant_id", "shipment_id"]).returning(Invoice.id)).scalar()
        if new is not None:
            # in this same transaction: the event exists if and only if the invoice does
            notifications.emit(conn, merchant, INVOICE_CREATED, order.id, header.get("customer_id"),
                               header.get("po_number"),
                               {"order": order_summary(order), "invoice": invoice_event(row)}, entry_id,
                               profile_id=header.get("profile_id"))
            created.append(new)
    return created


def invoice_event(row: dict) -> dict:
    """What ``invoice.created`` says of the invoice."""
    return {"id": row["id"], "number": row["number"], "shipment_id": row["shipment_id"],
            "po_number": row["po_number"], "payment_terms": row["payment_terms"], "currency": row["currency"],
            "invoice_date": row["invoice_date"].isoformat(), "due_date": row["due_date"].isoformat(),
            "total": str(row["total"]), "lines": row["lines"]}


# ---------------------------------------------------------------- reads


@dataclass(frozen=True)
class InvoiceFilter:
    customer_id: str | None = None
    #: "open" (not yet due) | "overdue" (due date passed)
    status: str | None = None
    order_id: str | None = None


def _where(merchant: str, f: InvoiceFilter, today: date):
    clauses = [Invoice.merchant_id == merchant]
    if f.customer_id is not None:
        clauses.append(Invoice.customer_id == f.customer_id)
    if f.order_id is not None:
        clauses.append(Invoice.order_id == f.order_id)
    if f.status == "open":
        clauses.append(Invoice.due_date >= today)
    elif f.status == "overdue":
        clauses.append(Invoice.due_date < today)
    return and_(*clauses)


def list_invoices(conn: Connection, merchant: str, f: InvoiceFilter, today: date, limit: int,
                  offset: int) -> tuple[list[Any], int]:
    where = _where(merchant, f, today)
    total = int(conn.scalar(select(func.count()).select_from(Invoice).where(where)))
    rows = conn.execute(select(Invoice).where(where).order_by(Invoice.number.desc())
                        .limit(limit).offset(offset)).all()
    return list(rows), total


def get_invoice(conn: Connection, merchant: str, invoice_id_: str) -> Invoice | None:
    return conn.execute(select(Invoice).where(Invoice.merchant_id == merchant,
                                              Invoice.id == invoice_id_)).first()


def invoice_for_shipment(conn: Connection, merchant: str, shipment_id: str) -> Invoice | None:
    return conn.execute(select(Invoice).where(Invoice.merchant_id == merchant,
                                              Invoice.shipment_id == shipment_id)).first()
