"""What a shipment's outbox event adds to the system of record besides the
shipment itself: its cartons and pallets with their SSCCs, and the invoice
of a wholesale order (persistence/invoices.py). Called once per batch from
persistence.apply.apply_batch, for the entries applied for the first time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert

from persistence.invoices import create_invoices
from persistence.models import ShipmentCarton

#: Serials a rebuild skips above PostgreSQL's highest: SSCCs handed out in the
#: window a lost Redis disk can lose (docs/operations.md) are printed on
#: cartons that exist, so they must not be given again.
SSCC_REBUILD_GAP = 1000


def apply_shipments(conn: Connection, entries: list, merchant: str) -> None:
    rows = []
    for entry in entries:
        s = entry.event.get("shipment")
        if not isinstance(s, dict):
            continue
        at = datetime.fromtimestamp((s.get("shipped_at_ms") or entry.event["at"]) / 1000, tz=UTC)
        for i, c in enumerate(s.get("cartons") or [], 1):
            rows.append({"merchant_id": merchant, "shipment_id": s["id"], "kind": "carton",
                         "number": int(c.get("number") or i), "order_id": s["order_id"],
                         "sscc": c.get("sscc"), "serial": c.get("serial"), "lines": c.get("lines") or [],
                         "created_at": at})
        serials = s.get("pallet_serials") or []
        for n, code in enumerate(s.get("pallet_ssccs") or [], 1):
            rows.append({"merchant_id": merchant, "shipment_id": s["id"], "kind": "pallet", "number": n,
                         "order_id": s["order_id"], "sscc": code,
                         "serial": serials[n - 1] if n <= len(serials) else None,
                         "lines": [], "created_at": at})
    if rows:
        conn.execute(insert(ShipmentCarton).on_conflict_do_nothing(
            index_elements=["merchant_id", "shipment_id", "kind", "number"]), rows)
    create_invoices(conn, merchant, entries)


def highest_serial(conn: Connection, merchant: str) -> int:
    return int(conn.scalar(select(func.coalesce(func.max(ShipmentCarton.serial), 0))
                           .where(ShipmentCarton.merchant_id == merchant)))
