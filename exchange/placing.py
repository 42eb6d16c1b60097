"""What the imports share: the ids derived from customer + PO number, the
order to place and its report lines, and placing it through the engine
(or, in a dry run, looking whether it exists)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from documents.tabular import RowError
from documents.x12 import errors as x12e
from engine.commands import Op, PlaceOrder
from engine.errors import Conflict, InsufficientStock, NotFound
from engine.model import Order
from engine.store import Store
from exchange import items as item_map
from exchange.report import LineOutcome, OrderOutcome, Problem
from onhand.settings import Settings

Progress = Callable[[str, int, int], None]


def digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def order_id_for(merchant: str, customer_id: str, po_number: str) -> str:
    return "ord_" + digest("po", merchant, customer_id, po_number.lower())[:16]


def operation_id_for(merchant: str, customer_id: str, po_number: str) -> str:
    return "imp-" + digest("po", merchant, customer_id, po_number.lower())[:40]


def row_problem(err: RowError) -> Problem:
    return Problem(message=err.message, line=err.line, column=err.column or None)


def segment_problem(err: x12e.SegmentError) -> Problem:
    return Problem(message=err.message, segment=err.segment_id, position=err.position, line=err.line)


def wholesale_profile(customer: dict) -> dict:
    return next((p for p in customer.get("profiles") or [] if p.get("channel") == "wholesale"), {})


@dataclass
class Placed:
    """An order to place: its command and what the report says of its lines."""

    outcome: OrderOutcome
    command: PlaceOrder | None
    op_id: str
    header: dict
    #: Report lines in order-line order, then the rejected ones.
    lines: list[LineOutcome] = field(default_factory=list)
    #: How many of ``lines`` are on the order (the rest were rejected).
    placed: int = 0


class ImporterBase:
    def __init__(self, store: Store, pg_engine: AsyncEngine, settings: Settings, *, actor: str = "import"):
        self.store = store
        self.pg = pg_engine
        self.settings = settings
        self.merchant = store.keys.merchant
        self.actor = actor

    async def _pg(self, fn, *args, **kwargs):
        async with self.pg.begin() as conn:
            return await conn.run_sync(lambda c: fn(c, *args, **kwargs))

    # ------------------------------------------------------------ shared

    async def _skus(self, candidates: set[str]) -> dict[str, dict]:
        names = sorted(s for s in candidates if item_map.valid_sku(s))
        found = await self.store.inventory(names) if names else []
        return {n: inv.details for n, inv in zip(names, found, strict=True) if inv is not None}

    async def _place(self, placed: Placed, dry_run: bool) -> Order | None:
        """Places the order (or, dry, looks whether it exists). Sets the outcome."""
        cmd, outcome = placed.command, placed.outcome
        if cmd is None:
            return None
        if dry_run:
            existing = await self.store.order(cmd.order_id) or await self._stored_order(cmd.order_id)
            outcome.status = "exists" if existing is not None else "would_create"
            return existing
        op = Op(op_id=placed.op_id, now_ms=int(time.time() * 1000), actor=self.actor,
                idempotency_ttl_ms=self.settings.idempotency_ttl_s * 1000)
        try:
            result = await self.store.run(cmd, op)
        except InsufficientStock as exc:
            outcome.status = "refused"
            short = ", ".join(f"{s.sku} ({s.requested} wanted, {s.available} available)" for s in exc.lines)
            outcome.problems.append(Problem(message=f"all_or_nothing and not enough stock: {short}"))
            return None
        except Conflict as exc:
            if exc.reason != "order_exists":
                raise
            outcome.status = "exists"
            return await self.store.order(cmd.order_id) or await self._stored_order(cmd.order_id)
        except NotFound as exc:
            outcome.status = "rejected"
            outcome.problems.append(Problem(message=f"unknown SKU(s): {', '.join(exc.ids)}"))
            return None
        outcome.status = "exists" if result.replayed else "created"
        return result.order

    async def _stored_order(self, order_id: str) -> Order | None:
        from api.reads import OrderReader

        return await OrderReader(self.store, self.pg).get(order_id)

    @staticmethod
    def _fill_lines(placed: Placed, order: Order | None) -> None:
        if order is None:
            return
        for outcome, line in zip(placed.lines, order.lines, strict=False):
            outcome.reserved, outcome.backordered, outcome.cancelled = (
                line.reserved + line.shipped, line.backordered, line.cancelled)


async def unsynced_customers(store: Store) -> list[dict]:
    """The customer records PostgreSQL does not have yet (``P:unsynced:d``,
    as api/reads.py's RecordReader reads them): a customer made a moment ago
    is found by an import at once."""
    prefix, tag = store.keys.prefix, b"customer:"
    ids = sorted(m[len(tag):].decode() for m in await store.redis.smembers(f"{prefix}:unsynced:d")
                 if m.startswith(tag))
    if not ids:
        return []
    async with store.redis.pipeline(transaction=False) as pipe:
        for cid in ids:
            pipe.hget(f"{prefix}:d:customer:{cid}", "doc")
        raws = await pipe.execute()
    return [msgspec.json.decode(raw) for raw in raws if raw]


async def customer_doc(store: Store, customer_id: str) -> dict | None:
    raw = await store.redis.hget(f"{store.keys.prefix}:d:customer:{customer_id}", "doc")
    return msgspec.json.decode(raw) if raw else None
