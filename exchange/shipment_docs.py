"""856 ship notices and 810 invoices for shipments of EDI orders, made from
PostgreSQL once the shipment (and its invoice) got there through the outbox.

Works like the Shopify fulfillment push: every recent shipment of an order
that came from an 850 and has no 856/810 row yet is due; one run at a time
holds a Redis lock. An 856 whose readiness check fails (documents/asn_check)
is recorded as blocked with the reasons, and not sent; ``POST
/v1/edi/documents/{id}/recheck`` forgets it so the next run checks again.
Documents recorded but not yet in the outbox folder (a crash between the
two) are written by every run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis import Redis
from sqlalchemy import Engine, exists, select

from documents import asn_check
from engine.keys import Keys
from engine.model import order_from_snapshot
from exchange import outgoing
from onhand.settings import Settings
from persistence import edi as pg
from persistence.invoices import invoice_for_shipment
from persistence.models import Customer, EdiDocument, Order, Shipment, Sku

log = logging.getLogger("onhand.edi")

#: Shipments looked at per run.
BATCH = 50
#: Shipments older than this are not looked at any more.
LOOK_BACK = timedelta(days=7)
#: A run holds this lock so runs never overlap, milliseconds.
LOCK_TTL_MS = 120_000


@dataclass
class ShipmentDocsReport:
    sent: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    waiting: int = 0
    rewritten: int = 0


class ShipmentDocuments:
    def __init__(self, redis: Redis, engine: Engine, keys: Keys, settings: Settings):
        self.redis = redis
        self.engine = engine
        self.merchant = keys.merchant
        self.settings = settings
        self.lock_key = f"{keys.prefix}:edi:shipdocs:lock"

    def run(self) -> ShipmentDocsReport:
        report = ShipmentDocsReport()
        if not self.redis.set(self.lock_key, "1", nx=True, px=LOCK_TTL_MS):
            return report
        try:
            self._rewrite_unsent(report)
            for row in self._due():
                self._one(row, report)
        finally:
            self.redis.delete(self.lock_key)
        return report

    def _due(self) -> list:
        since = datetime.now(UTC) - LOOK_BACK

        def missing(kind: str):
            return ~exists().where(EdiDocument.merchant_id == self.merchant,
                                   EdiDocument.dedupe_key == kind + ":" + Shipment.id)

        stmt = (select(Shipment.id, Shipment.doc, Order.id.label("order_id"), Order.seq, Order.channel,
                       Order.backorder_policy, Order.header, Order.version, Order.updated_at)
                .join(Order, (Order.merchant_id == Shipment.merchant_id) & (Order.id == Shipment.order_id))
                .where(Shipment.merchant_id == self.merchant, Shipment.shipped_at >= since,
                       Order.header.has_key("edi"),
                       missing("856") | missing("810"))
                .order_by(Shipment.shipped_at).limit(BATCH))
        with self.engine.connect() as conn:
            return conn.execute(stmt).all()

    def _one(self, row, report: ShipmentDocsReport) -> None:
        order = order_from_snapshot({"id": row.order_id, "n": row.seq, "c": row.channel,
                                     "p": row.backorder_policy, "v": row.version,
                                     "u": int(row.updated_at.timestamp() * 1000), "L": [], "d": row.header})
        shipment = row.doc
        at = datetime.now(UTC)
        made: list[str] = []
        with self.engine.begin() as conn:
            customer = conn.scalar(select(Customer.doc).where(Customer.merchant_id == self.merchant,
                                                              Customer.id == row.header.get("customer_id")))
            profile = next((p for p in (customer or {}).get("profiles") or []
                            if p.get("id") == row.header.get("profile_id")), {})
            options = profile.get("edi") or {}
            if self._due_kind(conn, "856", options, order, shipment):
                skus = sorted({line["sku"] for line in shipment.get("lines") or []})
                packs = dict(conn.execute(select(Sku.sku, Sku.case_pack).where(
                    Sku.merchant_id == self.merchant, Sku.sku.in_(skus))).all())
                problems = asn_check.problems(shipment, packs)
                if problems:
                    doc = pg.record_blocked(conn, self.merchant, kind="856", key=f"856:{shipment['id']}",
                                            reason="; ".join(problems), order_id=order.id,
                                            shipment_id=shipment["id"], po_number=row.header.get("po_number"),
                                            customer_id=row.header.get("customer_id"))
                    report.blocked.append(doc.id)
                    log.warning("856 for shipment %s blocked: %s", shipment["id"], "; ".join(problems))
                else:
                    made.append(outgoing.record_856(conn, self.settings, order, shipment, at).id)
            if self._due_kind(conn, "810", options, order, shipment):
                invoice = invoice_for_shipment(conn, self.merchant, shipment["id"])
                if invoice is None:
                    report.waiting += 1
                else:
                    made.append(outgoing.record_810(conn, self.settings, order, shipment, invoice, at).id)
        # after the commit: a document is in the folder only once it is recorded
        self._write(made)
        report.sent.extend(made)

    def _due_kind(self, conn, kind: str, options: dict, order, shipment: dict) -> bool:
        """True when the shipment's ``kind`` document is still to be made;
        records it skipped when the partner does not take it."""
        key = f"{kind}:{shipment['id']}"
        if pg.document_by_key(conn, self.merchant, key) is not None:
            return False
        if options.get(f"send_{kind}") is False:
            pg.record_blocked(conn, self.merchant, kind=kind, key=key, status="skipped",
                              reason=f"the partner does not take {kind}s", order_id=order.id,
                              shipment_id=shipment["id"], customer_id=order.header.get("customer_id"))
            return False
        return True

    def _write(self, ids: list[str]) -> None:
        for doc_id in ids:
            with self.engine.begin() as conn:
                pg.write_outbox(conn, self.merchant, doc_id, self.settings.edi_outbox_dir)

    def _rewrite_unsent(self, report: ShipmentDocsReport) -> None:
        with self.engine.connect() as conn:
            ids = pg.unsent(conn, self.merchant)
        self._write(ids)
        report.rewritten += len(ids)
