"""Reads the API makes of PostgreSQL (async). Orders come back as snapshots
shaped like the scripts' (engine.model.order_from_snapshot reads both)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.models import ApiKey, Customer, LedgerEntry, Order, OrderLine, Shipment, Sku, User


@dataclass(frozen=True)
class OrderFilter:
    po_number: str | None = None
    channel: str | None = None
    status: str | None = None
    customer_id: str | None = None
    sku: str | None = None
    #: True: orders with backordered units; False: orders without.
    backordered: bool | None = None
    #: The order number (its acceptance sequence).
    number: int | None = None
    #: A shipment's tracking number (any case).
    tracking_number: str | None = None
    #: Any of these customers (the staff UI's search by customer name).
    customer_ids: tuple[str, ...] | None = None

    def matches(self, order, header: dict[str, Any]) -> bool:
        """The same filter, applied to an order read from Redis."""
        if self.po_number is not None and (header.get("po_number") or "").lower() != self.po_number.lower():
            return False
        if self.channel is not None and order.channel.value != self.channel:
            return False
        if self.status is not None and order.status.value != self.status:
            return False
        if self.customer_id is not None and header.get("customer_id") != self.customer_id:
            return False
        if self.sku is not None and not any(line.sku == self.sku for line in order.lines):
            return False
        if self.backordered is not None and any(line.backordered for line in order.lines) != self.backordered:
            return False
        if self.number is not None and order.number != self.number:
            return False
        if self.tracking_number is not None and not any(
                (s.get("tracking_number") or "").lower() == self.tracking_number.lower() for s in order.shipments):
            return False
        if self.customer_ids is not None and header.get("customer_id") not in self.customer_ids:
            return False
        return True


def _where(f: OrderFilter, merchant: str, exclude: list[str]):
    clauses = [Order.merchant_id == merchant]
    if f.po_number is not None:
        clauses.append(func.lower(Order.po_number) == f.po_number.lower())
    if f.channel is not None:
        clauses.append(Order.channel == f.channel)
    if f.status is not None:
        clauses.append(Order.status == f.status)
    if f.customer_id is not None:
        clauses.append(Order.customer_id == f.customer_id)
    if f.sku is not None:
        clauses.append(exists().where(and_(OrderLine.merchant_id == Order.merchant_id,
                                           OrderLine.order_id == Order.id, OrderLine.sku == f.sku)))
    if f.backordered is not None:
        waiting = exists().where(and_(OrderLine.merchant_id == Order.merchant_id,
                                      OrderLine.order_id == Order.id, OrderLine.backordered > 0))
        clauses.append(waiting if f.backordered else ~waiting)
    if f.number is not None:
        clauses.append(Order.seq == f.number)
    if f.tracking_number is not None:
        clauses.append(exists().where(and_(Shipment.order_id == Order.id,
                                           func.lower(Shipment.tracking_number) == f.tracking_number.lower())))
    if f.customer_ids is not None:
        clauses.append(Order.customer_id.in_(f.customer_ids) if f.customer_ids else False)
    if exclude:
        clauses.append(Order.id.not_in(exclude))
    return and_(True, *clauses)


async def count_orders(conn: AsyncConnection, merchant: str, f: OrderFilter, exclude: list[str],
                       cap: int | None = None) -> int:
    """How many orders match; with ``cap``, counting stops there (the staff
    UI says "more than ..." instead of counting 200,000 rows per page)."""
    if cap is None:
        return int(await conn.scalar(select(func.count()).select_from(Order).where(_where(f, merchant, exclude))))
    found = select(Order.id).where(_where(f, merchant, exclude)).limit(cap).subquery()
    return int(await conn.scalar(select(func.count()).select_from(found)))


#: Below this many matches a page is read through the filter's own index and
#: sorted: newest first by the sequence index would walk every order
#: backwards to find a few (PostgreSQL's planner bets on finding them soon).
FEW_MATCHES = 5000


async def list_orders(conn: AsyncConnection, merchant: str, f: OrderFilter, exclude: list[str], limit: int,
                      offset: int = 0, *, matches: int | None = None) -> list[dict]:
    """The matching orders, newest first, from ``offset`` on, at most ``limit``,
    as snapshots. ``matches`` (how many there are, when known) lets a
    selective filter use its own index."""
    newest_first = Order.seq.desc()
    if matches is not None and matches <= FEW_MATCHES:
        newest_first = (Order.seq + 0).desc()  # the same order, but not by the sequence index
    rows = (await conn.execute(
        select(Order).where(_where(f, merchant, exclude)).order_by(newest_first).limit(limit).offset(offset)
    )).all()
    return await _with_lines(conn, merchant, rows)


async def newest_number(conn: AsyncConnection, merchant: str, f: OrderFilter, exclude: list[str]) -> int:
    """The highest order number among the matching orders (0: none)."""
    return int(await conn.scalar(select(func.coalesce(func.max(Order.seq), 0)).where(_where(f, merchant, exclude))))


async def order_by_id(conn: AsyncConnection, merchant: str, order_id: str) -> dict | None:
    rows = (await conn.execute(select(Order).where(Order.merchant_id == merchant, Order.id == order_id))).all()
    snaps = await _with_lines(conn, merchant, rows)
    return snaps[0] if snaps else None


async def _with_lines(conn: AsyncConnection, merchant: str, rows) -> list[dict]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    lines = (await conn.execute(
        select(OrderLine).where(OrderLine.merchant_id == merchant, OrderLine.order_id.in_(ids))
        .order_by(OrderLine.order_id, OrderLine.idx)
    )).all()
    by_order: dict[str, list] = {}
    for line in lines:
        by_order.setdefault(line.order_id, []).append([
            line.sku or "", line.quantity, line.reserved, line.backordered, line.exception,
            line.shipped, line.cancelled, line.returned, line.exception_reason or "",
            1 if line.pooled else 0,
        ])
    out = []
    for o in rows:
        out.append({
            "id": o.id, "d": o.header, "n": o.seq, "c": o.channel, "p": o.backorder_policy,
            "L": by_order.get(o.id, []), "S": o.shipments, "R": o.returns, "v": o.version,
            "u": int(o.updated_at.timestamp() * 1000),
        })
    return out


def like_pattern(q: str) -> str:
    """A substring pattern for LIKE ... ESCAPE '\\': ``%`` and ``_`` in ``q``
    are literal characters, not wildcards."""
    escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_customers(conn: AsyncConnection, merchant: str, q: str | None, exclude: list[str],
                           limit: int) -> tuple[list[dict], int]:
    """Customers matching ``q`` (substring of name, email, phone, company or
    account number, any case),
    newest first, without those in ``exclude``: the first ``limit`` docs and
    how many match."""
    where = Customer.merchant_id == merchant
    if exclude:
        where = and_(where, Customer.id.not_in(exclude))
    if q:
        like = like_pattern(q)
        where = and_(where, func.lower(Customer.name).like(like, escape="\\")
                     | func.lower(Customer.email).like(like, escape="\\")
                     | func.lower(Customer.phone).like(like, escape="\\")
                     | func.lower(Customer.doc["company"].astext).like(like, escape="\\")
                     | func.lower(Customer.doc["account_number"].astext).like(like, escape="\\"))
    total = int(await conn.scalar(select(func.count()).select_from(Customer).where(where)))
    rows = (await conn.execute(
        select(Customer.doc).where(where).order_by(Customer.created_at.desc(), Customer.id).limit(limit)
    )).scalars().all()
    return list(rows), total


async def customer_doc(conn: AsyncConnection, merchant: str, customer_id: str) -> dict | None:
    return await conn.scalar(select(Customer.doc).where(Customer.merchant_id == merchant,
                                                        Customer.id == customer_id))


async def api_keys(conn: AsyncConnection, merchant: str, exclude: list[str],
                   limit: int) -> tuple[list[dict], int]:
    """Keys not revoked, newest first, without those in ``exclude``: the first
    ``limit`` records and how many there are."""
    where = and_(ApiKey.merchant_id == merchant, ApiKey.revoked_at.is_(None), ApiKey.doc.is_not(None))
    if exclude:
        where = and_(where, ApiKey.id.not_in(exclude))
    total = int(await conn.scalar(select(func.count()).select_from(ApiKey).where(where)))
    rows = (await conn.execute(
        select(ApiKey.doc).where(where).order_by(ApiKey.created_at.desc(), ApiKey.id).limit(limit)
    )).scalars().all()
    return list(rows), total


async def users(conn: AsyncConnection, merchant: str, exclude: list[str],
                limit: int) -> tuple[list[dict], int]:
    """The merchant's staff users, newest first, without those in ``exclude``."""
    where = User.merchant_id == merchant
    if exclude:
        where = and_(where, User.id.not_in(exclude))
    total = int(await conn.scalar(select(func.count()).select_from(User).where(where)))
    rows = (await conn.execute(
        select(User.doc).where(where).order_by(User.created_at.desc(), User.id).limit(limit)
    )).scalars().all()
    return list(rows), total


async def search_skus(conn: AsyncConnection, merchant: str, q: str, limit: int) -> list[tuple[str, str | None, str | None]]:
    """SKUs whose SKU, name (any case) or UPC starts with ``q``: (sku, name,
    upc), SKU order. Each condition has its prefix index (migration 0011)."""
    prefix = like_pattern(q)[1:]  # "q%": a prefix, wildcards in q literal
    rows = (await conn.execute(
        select(Sku.sku, Sku.name, Sku.upc).where(Sku.merchant_id == merchant).where(
            func.lower(Sku.sku).like(prefix, escape="\\") | func.lower(Sku.name).like(prefix, escape="\\")
            | Sku.upc.like(like_pattern_exact_case(q), escape="\\"))
        .order_by(Sku.sku).limit(limit))).all()
    return [tuple(r) for r in rows]


def like_pattern_exact_case(q: str) -> str:
    """A prefix pattern for LIKE keeping ``q``'s case (UPCs are digits)."""
    return q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def skus_by_upc(conn: AsyncConnection, merchant: str, upcs: list[str]) -> dict[str, str]:
    """UPC -> SKU for the UPCs that name one."""
    if not upcs:
        return {}
    rows = (await conn.execute(select(Sku.upc, Sku.sku).where(Sku.merchant_id == merchant, Sku.upc.in_(upcs)))).all()
    return {upc: sku for upc, sku in rows}


@dataclass(frozen=True)
class LedgerFilter:
    sku: str | None = None
    order_id: str | None = None
    #: Why units moved: reserve, fill, ship, cancel, receipt, count, return, take_back, ...
    reason: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _ledger_where(f: LedgerFilter, merchant: str):
    clauses = [LedgerEntry.merchant_id == merchant]
    if f.sku is not None:
        clauses.append(LedgerEntry.sku == f.sku)
    if f.order_id is not None:
        clauses.append(LedgerEntry.order_id == f.order_id)
    if f.reason is not None:
        clauses.append(LedgerEntry.reason == f.reason)
    if f.actor is not None:
        clauses.append(LedgerEntry.actor == f.actor)
    if f.since is not None:
        clauses.append(LedgerEntry.at >= f.since)
    if f.until is not None:
        clauses.append(LedgerEntry.at < f.until)
    return and_(True, *clauses)


async def ledger(conn: AsyncConnection, merchant: str, f: LedgerFilter, limit: int,
                 offset: int) -> tuple[list, int]:
    """Inventory movements, newest first (rows of inventory_ledger), and how many match."""
    where = _ledger_where(f, merchant)
    total = int(await conn.scalar(select(func.count()).select_from(LedgerEntry).where(where)))
    rows = (await conn.execute(
        select(LedgerEntry).where(where).order_by(LedgerEntry.at.desc(), LedgerEntry.id.desc())
        .limit(limit).offset(offset)
    )).all()
    return list(rows), total
