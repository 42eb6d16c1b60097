"""Pushes shipments of Shopify orders to Shopify as fulfillments with tracking.

Works from PostgreSQL: every shipment of an order that came from Shopify and
has no settled row in ``shopify_fulfillments`` is due. So a shipment is
pushed whatever happened to the process that recorded it, and a rebuilt Redis
changes nothing here. Each shipment becomes one ``fulfillmentCreate`` per
fulfillment order it touches, on the order's open fulfillment orders, with
the tracking number, company and URL, under an ``@idempotent`` key derived
from the shipment (and fulfillment order): a retry after a lost answer, or
after a crash before the row was written, gets Shopify's first result back
instead of a second fulfillment. A retry whose arguments changed meanwhile
(the first attempt did ship the units) is answered "same key, different
parameters", which also means it was done; and a shipment whose tracking
number Shopify already shows on a fulfillment of the order is not sent again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.dialects.postgresql import insert

from engine.keys import Keys
from persistence.models import Order, Shipment, ShopifyFulfillment
from workers.shopify_client import ShopifyClient, ShopifyError, ShopifyUnauthorized, ShopifyUnavailable

log = logging.getLogger("onhand.shopify.fulfillment")

#: Shipments pushed per run.
BATCH = 20
#: Attempts on transient failures before a shipment is given up (and alarmed).
MAX_ATTEMPTS = 10
#: First wait before retrying a shipment after a transient failure, seconds (doubles).
RETRY_S = 5.0
#: A run holds this lock so runs never overlap, milliseconds.
LOCK_TTL_MS = 120_000
#: Shipments older than this are not looked at any more (pushed or given up long ago).
LOOK_BACK = timedelta(days=7)

FULFILLMENT_ORDERS = """
query FulfillmentOrders($id: ID!) {
  order(id: $id) {
    id
    fulfillments(first: 20) { id trackingInfo { number } }
    fulfillmentOrders(first: 5) {
      nodes {
        id
        status
        lineItems(first: 50) { nodes { id remainingQuantity lineItem { id } } }
      }
    }
  }
}
"""

FULFILLMENT_CREATE = """
mutation Fulfil($fulfillment: FulfillmentInput!, $key: String!) {
  fulfillmentCreate(fulfillment: $fulfillment) @idempotent(key: $key) {
    fulfillment { id }
    userErrors { field message }
  }
}
"""

OPEN = ("OPEN", "IN_PROGRESS")


class NothingToFulfil(Exception):
    """Raised when Shopify has no open units for any line of the shipment."""


@dataclass
class FulfillmentReport:
    pushed: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    unauthorized: bool = False
    errors: list[str] = field(default_factory=list)


def plan(shipment_lines: list[dict], header: dict, fulfillment_orders: list[dict]) -> dict[str, list[dict]]:
    """fulfillment order id -> [{id: fulfillment order line item, quantity}],
    spreading each shipped line over the open fulfillment order lines of its
    Shopify line item."""
    statics = header.get("lines") or []
    wanted: dict[str, int] = {}
    for line in shipment_lines:
        idx = int(line.get("line", -1))
        li = statics[idx].get("shopify_line_item_id") if 0 <= idx < len(statics) else None
        if li:
            gid = f"gid://shopify/LineItem/{li}"
            wanted[gid] = wanted.get(gid, 0) + int(line["quantity"])
    out: dict[str, list[dict]] = {}
    for fo in fulfillment_orders:
        if fo.get("status") not in OPEN:
            continue
        for item in (fo.get("lineItems") or {}).get("nodes") or []:
            li = (item.get("lineItem") or {}).get("id")
            take = min(wanted.get(li, 0), int(item.get("remainingQuantity") or 0))
            if take > 0:
                out.setdefault(fo["id"], []).append({"id": item["id"], "quantity": take})
                wanted[li] -= take
    return out


class FulfillmentPusher:
    def __init__(self, redis: Redis, engine: Engine, keys: Keys, client: ShopifyClient,
                 *, notify_customer: bool = True):
        self.redis = redis
        self.engine = engine
        self.client = client
        self.notify_customer = notify_customer
        self.keys = keys
        self.lock_key = f"{keys.prefix}:shopify:fulfillment:lock"

    def run(self) -> FulfillmentReport:
        """Pushes the due shipments (at most BATCH); returns at once when
        another run holds the lock."""
        report = FulfillmentReport()
        if not self.redis.set(self.lock_key, "1", nx=True, px=LOCK_TTL_MS):
            return report
        try:
            for row in self._due():
                if not self._push_one(row, report):
                    break
        finally:
            self.redis.delete(self.lock_key)
        return report

    def _due(self) -> list[Any]:
        now = datetime.now(UTC)
        f = ShopifyFulfillment
        m = self.keys.merchant
        stmt = (
            select(Shipment.id, Shipment.order_id, Shipment.lines, Shipment.doc,
                   Order.shopify_order_id, Order.header, f.attempts)
            .join(Order, (Order.merchant_id == m) & (Order.id == Shipment.order_id))
            .outerjoin(f, (f.merchant_id == m) & (f.shipment_id == Shipment.id))
            .where(Shipment.merchant_id == m, Shipment.shipped_at >= now - LOOK_BACK,
                   Order.shopify_order_id.is_not(None),
                   or_(f.shipment_id.is_(None), and_(f.status == "retry", f.next_attempt_at <= now)))
            .order_by(Shipment.shipped_at).limit(BATCH)
        )
        with self.engine.connect() as conn:
            return conn.execute(stmt).all()

    def _push_one(self, row: Any, report: FulfillmentReport) -> bool:
        """Pushes one shipment; False when the run should stop (token refused)."""
        attempts = (row.attempts or 0) + 1
        try:
            ids = self._fulfil(row)
        except ShopifyUnauthorized as exc:
            report.unauthorized = True
            report.errors.append(str(exc))
            log.error("Shopify refused the access token; fulfillments wait: %s", exc)
            return False
        except NothingToFulfil as exc:
            self._record(row, "skipped", attempts, error=str(exc))
            report.skipped += 1
            return True
        except ShopifyUnavailable as exc:
            status = "failed" if attempts >= MAX_ATTEMPTS else "retry"
            self._record(row, status, attempts, error=str(exc),
                         retry_in_s=RETRY_S * 2 ** (attempts - 1))
            report.retried += 1
            report.errors.append(str(exc))
            if status == "failed":
                log.error("ALARM shipment %s of %s not pushed to Shopify after %d attempts: %s",
                          row.id, row.order_id, attempts, exc)
            return True
        except ShopifyError as exc:
            self._record(row, "failed", attempts, error=str(exc))
            report.failed += 1
            report.errors.append(str(exc))
            log.error("ALARM Shopify refused shipment %s of %s: %s", row.id, row.order_id, exc)
            return True
        self._record(row, "pushed", attempts, fulfillment_ids=ids)
        report.pushed += 1
        return True

    def _fulfil(self, row: Any) -> list[str]:
        order_gid = f"gid://shopify/Order/{row.shopify_order_id}"
        data = self.client.execute(FULFILLMENT_ORDERS, {"id": order_gid}, cost=560)
        order = data.get("order")
        if order is None:
            raise ShopifyError(f"Shopify has no order {row.shopify_order_id}")
        doc = row.doc or {}
        number = doc.get("tracking_number")
        done = [f["id"] for f in order.get("fulfillments") or []
                if number and any(t.get("number") == number for t in f.get("trackingInfo") or [])]
        if done:
            return done  # pushed before (the run that did it died before writing it down)
        groups = plan(row.lines or [], row.header or {},
                      (order.get("fulfillmentOrders") or {}).get("nodes") or [])
        if not groups:
            raise NothingToFulfil("Shopify has no open units for this shipment's lines")
        tracking = {k: v for k, v in (("number", doc.get("tracking_number")),
                                      ("company", doc.get("carrier")),
                                      ("url", doc.get("tracking_url"))) if v}
        created = []
        for fo_id, items in groups.items():
            fulfillment = {"lineItemsByFulfillmentOrder": [
                {"fulfillmentOrderId": fo_id, "fulfillmentOrderLineItems": items}],
                "notifyCustomer": self.notify_customer}
            if tracking:
                fulfillment["trackingInfo"] = tracking
            key = f"onhand-fulfillment-{row.id}-{fo_id.rsplit('/', 1)[-1]}"
            result = self.client.execute(FULFILLMENT_CREATE, {"fulfillment": fulfillment, "key": key},
                                         cost=10)["fulfillmentCreate"]
            errors = result.get("userErrors") or []
            if errors:
                if any("idempotency key" in (e.get("message") or "").lower() for e in errors):
                    created.append(f"(already created under {key})")
                    continue
                raise ShopifyError(f"fulfillmentCreate refused: {errors}")
            created.append((result.get("fulfillment") or {}).get("id") or "")
        return created

    def _record(self, row: Any, status: str, attempts: int, *, error: str | None = None,
                fulfillment_ids: list[str] | None = None, retry_in_s: float = 0.0) -> None:
        now = datetime.now(UTC)
        values = {"merchant_id": self.keys.merchant, "shipment_id": row.id, "order_id": row.order_id,
                  "shopify_order_id": row.shopify_order_id, "status": status,
                  "fulfillment_ids": fulfillment_ids or [], "attempts": attempts,
                  "last_error": error[:4000] if error else None,
                  "next_attempt_at": now + timedelta(seconds=retry_in_s) if status == "retry" else None,
                  "updated_at": now}
        stmt = insert(ShopifyFulfillment).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[ShopifyFulfillment.merchant_id, ShopifyFulfillment.shipment_id],
            set_={k: v for k, v in values.items() if k not in ("merchant_id", "shipment_id")})
        with self.engine.begin() as conn:
            conn.execute(stmt)
