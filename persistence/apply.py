"""Write a batch of outbox events into PostgreSQL in one transaction.

Idempotent and order-independent:
- ``applied_events`` has one row per outbox entry; an entry already there is
  skipped (a redelivered batch changes nothing; two workers racing on one
  entry serialise on that row and the second skips it).
- Snapshots (SKU counters, orders with their lines, customers, API keys)
  replace the stored row only when their version is newer, so batches may
  commit in any order and the newest version wins.
- Facts (ledger movements, shipments, returns, receipts, idempotency records)
  are keyed by the event or their own id and inserted once.
- The Shopify sync's count is a sum of per-event changes (applied once each,
  in any order); a commit's event removes its write-ahead record.
- Customer-facing events (webhooks, emails) are derived from the new entries
  and queued in the same transaction (persistence/notifications.py).
Rows are written in key order so concurrent batches lock in the same order.
Every row carries the merchant whose outbox the entries came from (outbox
entry ids, SKUs and references repeat across merchants).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Iterable

import msgspec
from sqlalchemy import Connection, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert

from engine.model import as_list, order_from_snapshot
from persistence.bulk import insert_rows
from persistence.shipping import apply_shipments
from persistence.notifications import apply_notifications
from persistence.models import (
    ApiKey,
    Customer,
    CustomerProfile,
    Order,
    OrderLine,
    Receipt,
    Return,
    Shipment,
    ShopifyPending,
    ShopifySyncWal,
    State,
    User,
    WebhookReceipt,
)

#: The state row holding the Shopify app's install state ({installed, at}).
SHOPIFY_APP_STATE = "shopify_app"

_decode = msgspec.json.Decoder()


APPLIED_COLUMNS = (("merchant_id", "text"), ("event_id", "text"), ("kind", "text"), ("op_id", "text"), ("at", "timestamptz"))
SKU_COLUMNS = (
    ("merchant_id", "text"), ("sku", "text"), ("name", "text"), ("upc", "text"), ("case_pack", "integer"),
    ("shopify_inventory_item_id", "text"), ("details", "jsonb"), ("dtc_reserve", "bigint"),
    ("on_hand", "bigint"), ("reserved_dtc", "bigint"), ("reserved_wholesale", "bigint"),
    ("backordered_dtc", "bigint"), ("backordered_wholesale", "bigint"), ("exception", "bigint"),
    ("version", "bigint"), ("created_at", "timestamptz"), ("updated_at", "timestamptz"),
)
ORDER_COLUMNS = (
    ("merchant_id", "text"), ("id", "text"), ("seq", "bigint"), ("channel", "text"), ("status", "text"),
    ("backorder_policy", "text"), ("customer_id", "text"), ("profile_id", "text"),
    ("po_number", "text"), ("shopify_order_id", "text"), ("header", "jsonb"), ("shipments", "jsonb"),
    ("returns", "jsonb"), ("version", "bigint"), ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
LINE_COLUMNS = (
    ("merchant_id", "text"), ("order_id", "text"), ("idx", "integer"), ("sku", "text"), ("quantity", "bigint"),
    ("reserved", "bigint"), ("backordered", "bigint"), ("exception", "bigint"), ("shipped", "bigint"),
    ("cancelled", "bigint"), ("returned", "bigint"), ("exception_reason", "text"), ("pooled", "boolean"),
)
LEDGER_COLUMNS = (
    ("merchant_id", "text"), ("event_id", "text"), ("idx", "integer"), ("op_id", "text"), ("kind", "text"), ("sku", "text"),
    ("order_id", "text"), ("reason", "text"), ("actor", "text"), ("d_on_hand", "bigint"),
    ("d_reserved_dtc", "bigint"), ("d_reserved_wholesale", "bigint"), ("d_backordered_dtc", "bigint"),
    ("d_backordered_wholesale", "bigint"), ("d_exception", "bigint"), ("units", "bigint"),
    ("at", "timestamptz"),
)
IDEMPOTENCY_COLUMNS = (("merchant_id", "text"), ("op_id", "text"), ("fingerprint", "text"), ("result", "text"),
                       ("expires_at", "timestamptz"))


def ms_to_dt(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class OutboxEntry(msgspec.Struct):
    id: str
    event: dict[str, Any]

    @classmethod
    def from_stream(cls, entry_id: bytes | str, fields: dict) -> "OutboxEntry":
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        raw = fields.get(b"e", fields.get("e"))
        return cls(eid, _decode.decode(raw))


def apply_batch(conn: Connection, entries: list[OutboxEntry], merchant: str) -> int:
    """Applies the entries of ``merchant``'s outbox not applied yet, in the
    caller's transaction. Returns how many were new."""
    if not entries:
        return 0
    entries = sorted(entries, key=lambda e: _stream_key(e.id))
    rows = [
        {"merchant_id": merchant, "event_id": e.id, "kind": e.event.get("t", "?"),
         "op_id": e.event.get("op", ""), "at": ms_to_dt(e.event.get("at", 0))}
        for e in entries
    ]
    # one statement over unnest arrays (persistence/bulk.py): a multi-VALUES
    # statement per batch would be compiled anew each time, which cost more
    # CPU than the database's work
    fresh = set(insert_rows(conn, "applied_events", APPLIED_COLUMNS, rows,
                            conflict="merchant_id, event_id", returning="event_id"))
    new = [e for e in entries if e.id in fresh]
    if not new:
        return 0
    _skus(conn, new, merchant)
    _orders(conn, new, merchant)
    _ledger(conn, new, merchant)
    _facts(conn, new, merchant)
    _records(conn, new, merchant)
    _idempotency(conn, new, merchant)
    _shopify(conn, new, merchant)
    _shopify_sync(conn, new, merchant)
    apply_shipments(conn, new, merchant)  # cartons and invoices (persistence/shipping.py)
    apply_notifications(conn, merchant, new)  # webhook events and emails (persistence/notifications.py)
    return len(new)


def mark_synced_args(entries: list[OutboxEntry], retention_ms: int) -> list | None:
    """ARGV for lua/mark_synced.lua once these entries are committed: the
    newest version of each order and record they carry (None: nothing to tell)."""
    orders: dict[str, int] = {}
    records: dict[str, int] = {}
    for e in entries:
        for o in e.event.get("orders") or []:
            orders[o["id"]] = max(orders.get(o["id"], 0), int(o["v"]))
        if d := e.event.get("doc"):
            rec = f"{d['kind']}:{d['id']}"
            records[rec] = max(records.get(rec, 0), int(d["v"]))
    if not orders and not records:
        return None
    args: list = [retention_ms, len(orders)]
    for pair in (*orders.items(), *records.items()):
        args += pair
    return args


def _stream_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _newest(items: Iterable[tuple[Any, int, Any]]) -> list[Any]:
    """(key, version, value) -> the values of the newest version per key, by key."""
    best: dict[Any, tuple[int, Any]] = {}
    for key, version, value in items:
        if key not in best or version > best[key][0]:
            best[key] = (version, value)
    return [best[k][1] for k in sorted(best)]


def _skus(conn: Connection, entries: list[OutboxEntry], merchant: str) -> None:
    snaps = _newest(
        (s["sku"], int(s["v"]), (s, e.event["at"]))
        for e in entries for s in as_list(e.event.get("skus"))
    )
    if not snaps:
        return
    rows = []
    for s, at in snaps:
        details = _decode.decode(s.get("m") or "{}")
        details = details if isinstance(details, dict) else {}
        rows.append({
            "merchant_id": merchant,
            "sku": s["sku"],
            "name": details.get("name"),
            "upc": details.get("upc"),
            "case_pack": details.get("case_pack"),
            "shopify_inventory_item_id": details.get("shopify_inventory_item_id"),
            "details": details,
            "dtc_reserve": int(s["fence"]),
            "on_hand": int(s["oh"]),
            "reserved_dtc": int(s["rd"]),
            "reserved_wholesale": int(s["rw"]),
            "backordered_dtc": int(s["bd"]),
            "backordered_wholesale": int(s["bw"]),
            "exception": int(s["ex"]),
            "version": int(s["v"]),
            "created_at": ms_to_dt(at),
            "updated_at": ms_to_dt(at),
        })
    insert_rows(conn, "skus", SKU_COLUMNS, rows, conflict="merchant_id, sku", newer_only=True,
                update=[c for c, _ in SKU_COLUMNS if c not in ("merchant_id", "sku", "created_at")])


def _orders(conn: Connection, entries: list[OutboxEntry], merchant: str) -> None:
    snaps = _newest(
        (o["id"], int(o["v"]), o) for e in entries for o in as_list(e.event.get("orders"))
    )
    if not snaps:
        return
    rows, lines = [], {}
    for snap in snaps:
        order = order_from_snapshot(snap)
        h = order.header
        created = h.get("created_at_ms") or order.updated_at_ms
        rows.append({
            "merchant_id": merchant,
            "id": order.id,
            "seq": order.number,
            "channel": order.channel.value,
            "status": order.status.value,
            "backorder_policy": order.policy.value,
            "customer_id": h.get("customer_id"),
            "profile_id": h.get("profile_id"),
            "po_number": h.get("po_number"),
            "shopify_order_id": _str_or_none(h.get("shopify_order_id")),
            "header": h,
            "shipments": order.shipments,
            "returns": order.returns,
            "version": order.version,
            "created_at": ms_to_dt(created),
            "updated_at": ms_to_dt(order.updated_at_ms),
        })
        lines[order.id] = [
            {"merchant_id": merchant, "order_id": order.id, "idx": i, "sku": line.sku, "quantity": line.quantity,
             "reserved": line.reserved, "backordered": line.backordered,
             "exception": line.exception, "shipped": line.shipped, "cancelled": line.cancelled,
             "returned": line.returned, "exception_reason": line.exception_reason,
             "pooled": line.pooled}
            for i, line in enumerate(order.lines)
        ]
    changed = sorted(insert_rows(conn, "orders", ORDER_COLUMNS, rows, conflict="merchant_id, id",
                                 newer_only=True, update=[c for c, _ in ORDER_COLUMNS
                                                          if c not in ("merchant_id", "id")],
                                 returning="id"))
    if not changed:
        return
    conn.execute(delete(OrderLine).where(OrderLine.merchant_id == merchant, OrderLine.order_id.in_(changed)))
    insert_rows(conn, "order_lines", LINE_COLUMNS, [row for oid in changed for row in lines[oid]])


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _ledger(conn: Connection, entries: list[OutboxEntry], merchant: str) -> None:
    rows = []
    for e in entries:
        ev = e.event
        at = ms_to_dt(ev["at"])
        for i, (sku, oid, reason, doh, drd, drw, dbd, dbw, dex, units) in enumerate(as_list(ev.get("ledger"))):
            rows.append({
                "merchant_id": merchant, "event_id": e.id, "idx": i, "op_id": ev.get("op", ""), "kind": ev.get("t", "?"),
                "sku": sku, "order_id": oid or None, "reason": reason, "actor": ev.get("actor", ""),
                "d_on_hand": doh, "d_reserved_dtc": drd, "d_reserved_wholesale": drw,
                "d_backordered_dtc": dbd, "d_backordered_wholesale": dbw, "d_exception": dex,
                "units": units, "at": at,
            })
    insert_rows(conn, "inventory_ledger", LEDGER_COLUMNS, rows, conflict="merchant_id, event_id, idx")


def _facts(conn: Connection, entries: list[OutboxEntry], merchant: str) -> None:
    shipments, returns, receipts = [], [], []
    for e in entries:
        ev = e.event
        if s := ev.get("shipment"):
            shipments.append({
                "merchant_id": merchant, "id": s["id"], "order_id": s["order_id"], "event_id": e.id,
                "method": s.get("method"), "carrier": s.get("carrier"), "service": s.get("service"),
                "tracking_number": s.get("tracking_number"), "tracking_url": s.get("tracking_url"),
                "lines": as_list(s.get("lines")), "doc": s,
                "shipped_at": ms_to_dt(s.get("shipped_at_ms") or ev["at"]),
            })
        # one return (restock.lua), or several (Shopify refunds)
        for r in ([ev["return"]] if ev.get("return") else []) + as_list(ev.get("returns")):
            returns.append({
                "merchant_id": merchant, "id": r["id"], "order_id": r["order_id"], "event_id": e.id,
                "reason": r.get("reason"), "lines": as_list(r.get("lines")),
                "returned_at": ms_to_dt(r.get("returned_at_ms") or ev["at"]),
            })
        if r := ev.get("receipt"):
            receipts.append({
                "merchant_id": merchant, "id": r["id"], "reference": r.get("reference"), "event_id": e.id,
                "lines": as_list(r.get("lines")),
                "received_at": ms_to_dt(r.get("received_at_ms") or ev["at"]),
            })
    for model, rows in ((Shipment, shipments), (Return, returns), (Receipt, receipts)):
        if rows:
            conn.execute(insert(model).on_conflict_do_nothing(index_elements=["merchant_id", "id"]), rows)


def _records(conn: Connection, entries: list[OutboxEntry], merchant: str) -> None:
    docs = _newest(
        ((d["kind"], d["id"]), int(d["v"]), (d, e.event["at"]))
        for e in entries if (d := e.event.get("doc"))
    )
    for d, at in docs:
        body = _decode.decode(d["doc"]) if isinstance(d.get("doc"), str) else None
        if d["kind"] == "customer":
            _customer(conn, merchant, d["id"], int(d["v"]), body, ms_to_dt(at))
        elif d["kind"] == "api_key":
            _api_key(conn, merchant, d["id"], int(d["v"]), body, ms_to_dt(at))
        elif d["kind"] == "user":
            _user(conn, merchant, d["id"], int(d["v"]), body, ms_to_dt(at))


def _customer(conn: Connection, merchant: str, cid: str, version: int, doc: dict | None,
              at: datetime) -> None:
    if doc is None:
        return  # customers are not removed in v1
    row = {"merchant_id": merchant, "id": cid, "name": doc.get("name") or "", "email": doc.get("email"),
           "phone": doc.get("phone"), "doc": doc, "version": version,
           "created_at": ms_to_dt(doc["created_at_ms"]) if doc.get("created_at_ms") else at,
           "updated_at": at}
    stmt = insert(Customer).values(row)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Customer.merchant_id, Customer.id],
        set_={c: stmt.excluded[c] for c in row if c not in ("merchant_id", "id", "created_at")},
        where=Customer.version < stmt.excluded.version,
    ).returning(Customer.id)
    if conn.scalar(stmt) is None:
        return
    conn.execute(delete(CustomerProfile).where(CustomerProfile.merchant_id == merchant,
                                               CustomerProfile.customer_id == cid))
    profiles = [
        {"merchant_id": merchant, "id": p["id"], "customer_id": cid, "channel": p["channel"],
         "payment_terms": p.get("payment_terms"), "backorder_policy": p.get("backorder_policy"),
         "shopify_customer_id": _str_or_none(p.get("shopify_customer_id"))}
        for p in doc.get("profiles") or []
    ]
    if profiles:
        conn.execute(insert(CustomerProfile), profiles)


def _api_key(conn: Connection, merchant: str, kid: str, version: int, doc: dict | None,
             at: datetime) -> None:
    row = {"merchant_id": merchant, "id": kid, "version": version, "doc": doc, "created_at": at,
           "revoked_at": at if doc is None else None}
    if doc is not None:
        row.update(role=doc.get("role"), customer_id=doc.get("customer_id"),
                   name=doc.get("name"), key_hash=doc.get("hash"),
                   created_at=ms_to_dt(doc["created_at_ms"]) if doc.get("created_at_ms") else at)
    stmt = insert(ApiKey).values(row)
    keep = ("merchant_id", "id", "created_at") if doc is None else ("merchant_id", "id")
    stmt = stmt.on_conflict_do_update(
        index_elements=[ApiKey.merchant_id, ApiKey.id],
        set_={c: stmt.excluded[c] for c in row if c not in keep},
        where=ApiKey.version < stmt.excluded.version,
    )
    conn.execute(stmt)


def _user(conn: Connection, merchant: str, uid: str, version: int, doc: dict | None,
          at: datetime) -> None:
    if doc is None:
        return  # users are disabled, never removed
    row = {"merchant_id": merchant, "id": uid, "email": doc["email"], "role": doc["role"],
           "password_hash": doc["password_hash"], "disabled": bool(doc.get("disabled")), "doc": doc,
           "version": version, "updated_at": at,
           "created_at": ms_to_dt(doc["created_at_ms"]) if doc.get("created_at_ms") else at}
    stmt = insert(User).values(row)
    stmt = stmt.on_conflict_do_update(
        index_elements=[User.merchant_id, User.id],
        set_={c: stmt.excluded[c] for c in row if c not in ("merchant_id", "id", "created_at")},
        where=User.version < stmt.excluded.version,
    )
    conn.execute(stmt)


def _idempotency(conn: Connection, entries: list[OutboxEntry], merchant: str) -> None:
    rows = list({
        e.event["op"]: {"merchant_id": merchant, "op_id": e.event["op"], "fingerprint": i.get("f", ""),
                        "result": i["r"] if isinstance(i["r"], str) else msgspec.json.encode(i["r"]).decode(),
                        "expires_at": ms_to_dt(i["exp"])}
        for e in entries if (i := e.event.get("idem"))
    }.values())
    # an operation's record is the same however often it is applied; it may
    # find a row its continuation fills made first (any batch order)
    insert_rows(conn, "idempotency_records", IDEMPOTENCY_COLUMNS, rows, conflict="merchant_id, op_id",
                update=("fingerprint", "result", "expires_at"))
    extra = _newest((x["op"], int(x["n"]), x) for e in entries if (x := e.event.get("idem_x")))
    if extra:
        conn.execute(_EXTRA_FILLS, [
            {"merchant_id": merchant, "op_id": x["op"], "extra_fills": x["x"], "extra_n": int(x["n"]),
             "expires_at": ms_to_dt(x["exp"])} for x in extra])
    hooks = [
        {"merchant_id": merchant, "dedupe_key": w["key"], "topic": w.get("topic", ""), "event_id": w.get("event_id"),
         "webhook_id": w.get("webhook_id"), "shopify_order_id": _str_or_none(w.get("order")),
         "result": w.get("r"), "received_at": ms_to_dt(e.event["at"]),
         "expires_at": ms_to_dt(w["exp"])}
        for e in entries for w in as_list(e.event.get("webhooks"))
    ]
    if hooks:
        conn.execute(insert(WebhookReceipt).on_conflict_do_nothing(
            index_elements=[WebhookReceipt.merchant_id, WebhookReceipt.dedupe_key]), hooks)


#: Continuation fills of a stored outcome (fill.lua's idem_x): the most wins.
_EXTRA_FILLS = text("""
INSERT INTO idempotency_records AS r (merchant_id, op_id, fingerprint, result, expires_at, extra_fills, extra_n)
VALUES (:merchant_id, :op_id, '', '', :expires_at, :extra_fills, :extra_n)
ON CONFLICT (merchant_id, op_id) DO UPDATE SET extra_fills = excluded.extra_fills, extra_n = excluded.extra_n
WHERE r.extra_n < excluded.extra_n
""")


def _shopify(conn: Connection, entries: list[OutboxEntry], merchant: str) -> None:
    """Cancels and refunds kept for Shopify orders not seen yet (a rebuild
    restores those whose order PostgreSQL still lacks), and the app's install
    state (the newest change wins)."""
    pending = [
        {"merchant_id": merchant, "key": p["key"], "shopify_order_id": str(p["order"]), "topic": p.get("topic", ""),
         "action": p["action"], "received_at": ms_to_dt(e.event["at"]),
         "expires_at": ms_to_dt(p["exp"])}
        for e in entries if isinstance(p := e.event.get("shopify_pending"), dict)
    ]
    if pending:
        conn.execute(insert(ShopifyPending).on_conflict_do_nothing(
            index_elements=[ShopifyPending.merchant_id, ShopifyPending.key]), pending)
    apps = [e.event["shopify_app"] for e in entries if isinstance(e.event.get("shopify_app"), dict)]
    if apps:
        newest = max(apps, key=lambda a: int(a.get("at", 0)))
        stmt = insert(State).values(merchant_id=merchant, key=SHOPIFY_APP_STATE,
                                    value=msgspec.json.encode(newest).decode())
        stmt = stmt.on_conflict_do_update(
            index_elements=[State.merchant_id, State.key], set_={"value": stmt.excluded.value},
            where=text("(state.value::jsonb->>'at')::bigint <= (excluded.value::jsonb->>'at')::bigint"))
        conn.execute(stmt)


_SYNC_STATE = text("""
INSERT INTO shopify_sync_state AS s (merchant_id, sku, lineage, balance, pushed, gen, settle, updated_at, pushed_at)
VALUES (:merchant_id, :sku, :lineage, :balance, :pushed, :gen, CAST(:settle AS jsonb), :updated_at, :pushed_at)
ON CONFLICT (merchant_id, sku) DO UPDATE SET
    balance = CASE WHEN excluded.lineage > s.lineage THEN excluded.balance
                   WHEN excluded.lineage = s.lineage THEN s.balance + excluded.balance
                   ELSE s.balance END,
    pushed = CASE WHEN (excluded.lineage, excluded.gen) > (s.lineage, s.gen)
                  THEN excluded.pushed ELSE s.pushed END,
    pushed_at = CASE WHEN (excluded.lineage, excluded.gen) > (s.lineage, s.gen)
                     THEN excluded.pushed_at ELSE s.pushed_at END,
    settle = CASE WHEN (excluded.lineage, excluded.gen) > (s.lineage, s.gen)
                  THEN excluded.settle ELSE s.settle END,
    gen = CASE WHEN (excluded.lineage, excluded.gen) > (s.lineage, s.gen)
               THEN excluded.gen ELSE s.gen END,
    lineage = GREATEST(s.lineage, excluded.lineage),
    updated_at = GREATEST(s.updated_at, excluded.updated_at)
""")


def _shopify_sync(conn: Connection, entries: list[OutboxEntry], merchant: str) -> None:
    """The available sync's count per SKU (lua/shopify_sync_commit.lua):
    every event carries its own change of the balance and the state's
    lineage; the newest lineage is kept and its changes summed (addition:
    any order, and each event is applied once), ``pushed`` and the settle
    come from the newest commit. A commit's event (shopify.synced) also
    closes its write-ahead record."""
    sums: dict[str, dict[str, Any]] = {}
    closed = []
    for e in entries:
        at = ms_to_dt(e.event["at"])
        for c in as_list(e.event.get("sync")):
            sku, lineage = c["sku"], int(c.get("l") or 0)
            row = sums.get(sku)
            if row is None or lineage > row["lineage"]:
                row = sums[sku] = {"merchant_id": merchant, "sku": sku, "lineage": lineage, "balance": 0,
                                   "pushed": None, "pushed_at": None,
                                   "gen": 0, "settle": None, "updated_at": at}
            elif lineage < row["lineage"]:
                continue
            row["balance"] += int(c.get("dx") or 0)
            row["updated_at"] = max(row["updated_at"], at)
            if c.get("g") is not None and int(c["g"]) > row["gen"]:
                settle = c.get("s") if isinstance(c.get("s"), dict) else None
                row.update(gen=int(c["g"]), pushed=int(c["p"]),
                           pushed_at=ms_to_dt(c["t"]) if c.get("t") is not None else None,
                           settle=None if settle is None else msgspec.json.encode(settle).decode())
        if e.event.get("t") == "shopify.synced" and e.event.get("key"):
            closed.append(e.event["key"])
    if sums:
        conn.execute(_SYNC_STATE, [sums[k] for k in sorted(sums)])
    if closed:
        conn.execute(delete(ShopifySyncWal).where(ShopifySyncWal.merchant_id == merchant,
                                                  ShopifySyncWal.key.in_(sorted(closed))))


def highest_sequence(conn: Connection, merchant: str) -> int:
    return int(conn.scalar(select(func.coalesce(func.max(Order.seq), 0)).where(Order.merchant_id == merchant)))
