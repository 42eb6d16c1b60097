"""Reads the API makes of PostgreSQL (async). Orders come back as snapshots
shaped like the scripts' (engine.model.order_from_snapshot reads both)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.models import ApiKey, Customer, Order, OrderLine


@dataclass(frozen=True)
class OrderFilter:
    po_number: str | None = None
    channel: str | None = None
    status: str | None = None
    customer_id: str | None = None
    sku: str | None = None

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
        return True


def _where(f: OrderFilter, exclude: list[str]):
    clauses = []
    if f.po_number is not None:
        clauses.append(func.lower(Order.po_number) == f.po_number.lower())
    if f.channel is not None:
        clauses.append(Order.channel == f.channel)
    if f.status is not None:
        clauses.append(Order.status == f.status)
    if f.customer_id is not None:
        clauses.append(Order.customer_id == f.customer_id)
    if f.sku is not None:
        clauses.append(exists().where(and_(OrderLine.order_id == Order.id, OrderLine.sku == f.sku)))
    if exclude:
        clauses.append(Order.id.not_in(exclude))
    return and_(True, *clauses)


async def count_orders(conn: AsyncConnection, f: OrderFilter, exclude: list[str]) -> int:
    return int(await conn.scalar(select(func.count()).select_from(Order).where(_where(f, exclude))))


async def list_orders(conn: AsyncConnection, f: OrderFilter, exclude: list[str], limit: int) -> list[dict]:
    """The newest ``limit`` matching orders, newest first, as snapshots."""
    rows = (await conn.execute(
        select(Order).where(_where(f, exclude)).order_by(Order.seq.desc()).limit(limit)
    )).all()
    return await _with_lines(conn, rows)


async def order_by_id(conn: AsyncConnection, order_id: str) -> dict | None:
    rows = (await conn.execute(select(Order).where(Order.id == order_id))).all()
    snaps = await _with_lines(conn, rows)
    return snaps[0] if snaps else None


async def _with_lines(conn: AsyncConnection, rows) -> list[dict]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    lines = (await conn.execute(
        select(OrderLine).where(OrderLine.order_id.in_(ids)).order_by(OrderLine.order_id, OrderLine.idx)
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


async def search_customers(conn: AsyncConnection, q: str | None, limit: int, offset: int) -> tuple[list[dict], int]:
    where = True
    if q:
        like = f"%{q.lower()}%"
        where = (func.lower(Customer.name).like(like) | func.lower(Customer.email).like(like)
                 | func.lower(Customer.phone).like(like))
    total = int(await conn.scalar(select(func.count()).select_from(Customer).where(where)))
    rows = (await conn.execute(
        select(Customer.doc).where(where).order_by(Customer.created_at.desc(), Customer.id)
        .limit(limit).offset(offset)
    )).scalars().all()
    return list(rows), total


async def customer_doc(conn: AsyncConnection, customer_id: str) -> dict | None:
    return await conn.scalar(select(Customer.doc).where(Customer.id == customer_id))


async def api_keys(conn: AsyncConnection) -> list[dict]:
    rows = (await conn.execute(
        select(ApiKey.doc).where(ApiKey.revoked_at.is_(None)).order_by(ApiKey.created_at.desc())
    )).scalars().all()
    return [r for r in rows if r]
