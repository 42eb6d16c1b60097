"""Imports: X12 850s and CSV orders become the same order command the API
makes (engine.commands.PlaceOrder, channel wholesale, the customer's profile
policy), and CSV customers become customer records.

Idempotent by customer + PO number: the order id and the operation id are
derived from (merchant, customer, PO number), so a re-sent 850, a CSV
imported twice, or two imports of one file at the same moment place the
order once; the second attempt is the engine's replay of the first (or,
once the idempotency record has expired, an "order exists" refusal). The
997s and 855s are recorded once per group and per PO (persistence/edi.py).

One :class:`Importer` per caller (CLI, API, inbox worker, staff UI); each
method takes the file's bytes and returns an :class:`ImportReport`. A dry
run reads, checks and resolves everything and changes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from documents import csv_customers, csv_orders
from documents.tabular import RowError
from documents.x12 import ack997, po850
from documents.x12 import errors as x12e
from documents.x12.reader import Group, Interchange, X12Error, read
from engine.commands import OrderLineRequest, Op, PlaceOrder, PutRecord
from engine.errors import Conflict, InsufficientStock, NotFound
from engine.model import MAX_ORDER_LINES, Order, default_policy, Channel
from engine.store import Store
from exchange import items as item_map
from exchange import outgoing
from exchange.report import (CustomerOutcome, DocumentRef, ImportReport, LineOutcome, OrderOutcome,
                             Problem)
from onhand.settings import Settings
from persistence import edi as pg

Progress = Callable[[str, int, int], None]
_encode = msgspec.json.Encoder()


def _hash(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def order_id_for(merchant: str, customer_id: str, po_number: str) -> str:
    return "ord_" + _hash("po", merchant, customer_id, po_number.lower())[:16]


def operation_id_for(merchant: str, customer_id: str, po_number: str) -> str:
    return "imp-" + _hash("po", merchant, customer_id, po_number.lower())[:40]


def _row_problem(err: RowError) -> Problem:
    return Problem(message=err.message, line=err.line, column=err.column or None)


def _segment_problem(err: x12e.SegmentError) -> Problem:
    return Problem(message=err.message, segment=err.segment_id, position=err.position, line=err.line)


def wholesale_profile(customer: dict) -> dict:
    return next((p for p in customer.get("profiles") or [] if p.get("channel") == "wholesale"), {})


@dataclass
class _Placed:
    """An order to place: its command and what the report says of its lines."""

    outcome: OrderOutcome
    command: PlaceOrder | None
    op_id: str
    header: dict
    #: Report lines in order-line order, then the rejected ones.
    lines: list[LineOutcome] = field(default_factory=list)
    #: How many of ``lines`` are on the order (the rest were rejected).
    placed: int = 0


class Importer:
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

    async def _place(self, placed: _Placed, dry_run: bool) -> Order | None:
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
    def _fill_lines(placed: _Placed, order: Order | None) -> None:
        if order is None:
            return
        for outcome, line in zip(placed.lines, order.lines, strict=False):
            outcome.reserved, outcome.backordered, outcome.cancelled = (
                line.reserved + line.shipped, line.backordered, line.cancelled)

    # ------------------------------------------------------------ X12

    async def x12(self, data: bytes, *, dry_run: bool = False, progress: Progress | None = None,
                  source: str | None = None) -> ImportReport:
        started = time.monotonic()
        report = ImportReport(kind="x12", dry_run=dry_run, source=source)
        try:
            interchanges = read(data)
        except X12Error as exc:
            report.ok = False
            report.problems.append(Problem(message=str(exc), line=exc.line, position=exc.segment))
            return report
        for ic in interchanges:
            await self._interchange(ic, report, dry_run, progress)
        report.seconds = time.monotonic() - started
        return report

    async def _interchange(self, ic: Interchange, report: ImportReport, dry_run: bool,
                           progress: Progress | None) -> None:
        s = self.settings
        if s.edi_isa_id and (ic.receiver_id != s.edi_isa_id or
                             (s.edi_isa_qualifier and ic.receiver_qualifier != s.edi_isa_qualifier)):
            report.ok = False
            report.problems.append(Problem(message=(
                f"interchange {ic.control} is addressed to {ic.receiver_qualifier}/{ic.receiver_id}, "
                f"not to this merchant ({s.edi_isa_qualifier or '*'}/{s.edi_isa_id}): nothing was read")))
            return
        at = datetime.now(UTC)
        for group in ic.groups:
            partners = await self._pg(pg.find_partners, ic.sender_qualifier, ic.sender_id, group.sender)
            if len(partners) != 1:
                report.ok = False
                what = "unknown trading partner" if not partners else "ambiguous trading partner"
                report.problems.append(Problem(message=(
                    f"{what} ISA {ic.sender_qualifier}/{ic.sender_id}, GS {group.sender} (group {group.control}): "
                    + ("no customer profile has this EDI identity" if not partners else
                       f"{len(partners)} customer profiles have it")
                    + "; nothing in the group was read, no 997 sent")))
                continue
            await self._group(ic, group, partners[0], report, dry_run, progress, at)

    async def _group(self, ic: Interchange, group: Group, partner: pg.Partner, report: ImportReport,
                     dry_run: bool, progress: Progress | None, at: datetime) -> None:
        acks: list[ack997.SetAck] = []
        orders: list[tuple[po850.PurchaseOrder, Any]] = []
        for ts in group.sets:
            if ts.id != "850":
                ack = ack997.SetAck(ts.id, ts.control, "R", ["1"])
                report.problems.append(Problem(message=f"transaction set {ts.id} {ts.control} is not read "
                                                       f"(only 850 purchase orders)", position=ts.position))
            elif ts.errors or group.errors:
                ack = ack997.acknowledge_set(ts, [], [])
                for note in ts.notes + group.notes:
                    report.problems.append(Problem(message=f"PO set {ts.control}: {note}", position=ts.position))
                if group.errors and not ts.errors:
                    ack = ack997.SetAck(ts.id, ts.control, "R", [x12e.SEGMENTS_IN_ERROR])
            else:
                po = po850.parse(ts)
                ack = ack997.acknowledge_set(ts, po.errors, po.line_errors)
                if ack.status == "R":
                    outcome = OrderOutcome(po_number=po.po_number or f"(set {ts.control})",
                                           customer_id=partner.customer["id"], status="rejected",
                                           problems=[_segment_problem(e) for e in po.errors])
                    report.orders.append(outcome)
                else:
                    orders.append((po, ts))
            acks.append(ack)
        group_ack = ack997.acknowledge_group(group, acks)
        report.groups.append({"group": group.control, "version": group.version, "status": group_ack.status,
                              "received": group_ack.received, "accepted": group_ack.accepted})
        plans = await self._plan_850s(ic, group, partner, [po for po, _ in orders], at)
        for done, placed in enumerate(plans, 1):
            order = await self._place(placed, dry_run)
            self._fill_lines(placed, order)
            report.orders.append(placed.outcome)
            if progress:
                progress("purchase orders", done, len(plans))
            if not dry_run:
                await self._acknowledge_po(placed, order, partner, report, at)
        if not dry_run:
            doc = await self._pg(outgoing.record_997, self.settings, ic, group, group_ack,
                                 partner.customer["id"], at)
            await self._sent(doc, report)

    async def _plan_850s(self, ic: Interchange, group: Group, partner: pg.Partner,
                         pos: list[po850.PurchaseOrder], at: datetime) -> list[_Placed]:
        customer, profile = partner.customer, partner.profile
        qualifiers = partner.edi.get("item_qualifiers") or item_map.DEFAULT_QUALIFIERS
        all_pairs = [line.ids for po in pos for line in po.lines]
        upcs = await self._pg(pg.skus_by_upc, item_map.upcs_wanted(all_pairs))
        refs = await self._pg(pg.item_refs, self.merchant, customer["id"], item_map.buyer_items_wanted(all_pairs))
        candidates = set(item_map.vendor_items_wanted(all_pairs)) | set(refs.values()) | \
            {s for skus in upcs.values() for s in skus}
        lookups = item_map.Lookups(await self._skus(candidates), upcs, refs)
        us = outgoing.Identity(ic.receiver_qualifier, ic.receiver_id, group.receiver)
        return [self._plan_850(po, ic, group, customer, profile, qualifiers, lookups, us, at) for po in pos]

    def _plan_850(self, po: po850.PurchaseOrder, ic: Interchange, group: Group, customer: dict,
                  profile: dict, qualifiers: list[str], lookups: item_map.Lookups,
                  us: outgoing.Identity, at: datetime) -> _Placed:
        cid = customer["id"]
        outcome = OrderOutcome(po_number=po.po_number, customer_id=cid, status="rejected")
        statics, rejected, requests, placed_lines, rejected_lines = [], [], [], [], []
        for line in po.lines:
            label = line.line_no or str(line.position)
            base = {"pos": line.position, "po_line": line.line_no, "uom": line.uom or "EA",
                    "ordered": line.quantity or 0, "ids": [list(p) for p in line.ids]}
            if line.price is not None:
                base["price"] = format(line.price, "f")
            item = " ".join(f"{q} {v}" for q, v in line.ids)
            if line.errors:
                reason = "; ".join(e.message for e in line.errors)
                rejected.append({**base, "units": line.units or line.quantity or 0, "reason": reason})
                rejected_lines.append(LineOutcome(line=label, item=item, units=line.units or 0, ack=["IR"],
                                                  error=reason))
                continue
            sku, how = item_map.resolve(line.ids, qualifiers, lookups)
            units = line.units
            if sku is not None and units is None:
                pack = (lookups.skus.get(sku) or {}).get("case_pack")
                if pack and line.quantity:
                    units = line.quantity * int(pack)
                else:
                    sku, how = None, (f"ordered in {line.uom} without a pack size (PO401), and {sku} has "
                                      f"no case_pack")
            if sku is None or not units:
                rejected.append({**base, "units": units or line.quantity or 0, "reason": how})
                rejected_lines.append(LineOutcome(line=label, item=item, units=units or 0, ack=["IR"], error=how))
                continue
            factor = units // line.quantity if line.quantity and units % line.quantity == 0 else 1
            static = {**base, "units_per": factor}
            if line.price is not None:
                static["unit_price"] = format((line.price / factor).quantize(Decimal("0.0001"),
                                                                            rounding=ROUND_HALF_UP).normalize(), "f")
            if line.description:
                static["description"] = line.description[:255]
            statics.append(static)
            requests.append(OrderLineRequest(sku=sku, qty=units))
            placed_lines.append(LineOutcome(line=label, item=item, sku=sku, units=units))
        edi = {
            "po_date": po.date, "purpose": po.purpose, "type": po.type, "version": group.version,
            "control": po.control, "partner": [ic.sender_qualifier, ic.sender_id], "partner_gs": group.sender,
            "us": [us.qualifier, us.id, us.gs_id], "usage": ic.usage, "interchange": ic.control,
            "group": group.control,
        }
        for name, value in (("ship_date", po.ship_date), ("cancel_date", po.cancel_date),
                            ("delivery_date", po.delivery_date)):
            if value:
                edi[name] = value
        if po.bill_to is not None:
            edi["bill_to"] = po.bill_to.as_address()
        if po.terms is not None:
            edi["terms"] = {k: v for k, v in dataclasses.asdict(po.terms).items() if v}
        if rejected:
            edi["rejected"] = rejected
        ship_to = po.ship_to.as_address() if po.ship_to is not None else profile.get("ship_to")
        header = {k: v for k, v in {
            "customer_id": cid, "profile_id": profile.get("id"), "po_number": po.po_number,
            "payment_terms": profile.get("payment_terms"), "currency": po.currency or "USD",
            "created_at_ms": int(at.timestamp() * 1000), "ship_to": ship_to, "source": "edi",
            "lines": statics, "edi": edi,
        }.items() if v}
        placed = _Placed(outcome, None, operation_id_for(self.merchant, cid, po.po_number), header,
                         placed_lines + rejected_lines, len(placed_lines))
        outcome.lines = placed.lines
        outcome.problems = [_segment_problem(e) for e in po.line_errors]
        if po.purpose not in ("00", "05", "06", "07"):
            outcome.problems.append(Problem(message=(
                f"BEG01 purpose {po.purpose!r} (cancellation or change) is not applied automatically: "
                "staff act on it"), segment="BEG", position=2))
            return placed
        if len(requests) > MAX_ORDER_LINES:
            outcome.problems.append(Problem(message=f"{len(requests)} lines: an order has at most "
                                                    f"{MAX_ORDER_LINES}"))
            return placed
        if not requests:
            outcome.problems.append(Problem(message="no line could be mapped to a SKU"))
            return placed
        policy = profile.get("backorder_policy") or default_policy(Channel.WHOLESALE)
        placed.command = PlaceOrder(order_id=order_id_for(self.merchant, cid, po.po_number), channel="wholesale",
                                    policy=str(policy), lines=tuple(requests), doc=_encode.encode(header).decode())
        outcome.order_id = placed.command.order_id
        return placed

    async def _acknowledge_po(self, placed: _Placed, order: Order | None, partner: pg.Partner,
                              report: ImportReport, at: datetime) -> None:
        outcome = placed.outcome
        if order is not None:
            ack = outgoing.po_ack(order, at)
        elif outcome.status in ("refused", "rejected") and placed.header.get("po_number"):
            ack = outgoing.refused_ack(placed.header, at)
        else:
            return
        codes = {line.key: [c for c, _ in line.acks()] for line in ack.lines}
        for k, lo in enumerate(outcome.lines):
            key = f"o{k}" if k < placed.placed else f"r{k - placed.placed}"
            lo.ack = codes.get(key, lo.ack)
        if partner.edi.get("send_855") is False:
            return
        doc = await self._pg(outgoing.record_855, self.settings, placed.header, ack,
                             order.id if order is not None else None, at)
        outcome.documents.append(doc.id)
        await self._sent(doc, report)

    async def _sent(self, doc, report: ImportReport) -> None:
        """Writes a recorded document to the outbox folder (its sending)."""
        await self._pg(pg.write_outbox, self.merchant, doc.id, self.settings.edi_outbox_dir)
        report.documents.append(DocumentRef(id=doc.id, kind=doc.kind, interchange_control=doc.isa_control,
                                            status="sent"))

    # ------------------------------------------------------------ CSV orders

    async def orders_csv(self, data: bytes, *, customer_id: str | None = None, dry_run: bool = False,
                         progress: Progress | None = None, encoding: str = "utf-8",
                         source: str | None = None) -> ImportReport:
        started = time.monotonic()
        report = ImportReport(kind="orders_csv", dry_run=dry_run, source=source)
        parsed = csv_orders.parse(data, encoding=encoding)
        if parsed.errors and not parsed.orders:
            report.ok = False
            report.problems = [_row_problem(e) for e in parsed.errors]
            return report
        report.problems = [_row_problem(e) for e in parsed.errors]
        customers = await self._csv_customers(parsed.orders, customer_id)
        lookups = await self._csv_lookups(parsed.orders, customers)
        plans = [self._plan_csv(o, customers.get(o.customer.lower()), customer_id, lookups, parsed)
                 for o in parsed.orders]
        for done, placed in enumerate(plans, 1):
            order = await self._place(placed, dry_run)
            self._fill_lines(placed, order)
            report.orders.append(placed.outcome)
            if progress:
                progress("orders", done, len(plans))
        report.seconds = time.monotonic() - started
        return report

    async def _csv_customers(self, orders: list[csv_orders.CsvOrder], given: str | None) -> dict[str, Any]:
        """customer value (lower-cased) -> customer doc, or a problem text."""
        out: dict[str, Any] = {}
        if given is not None:
            doc = await _customer_doc(self.store, given)
            for key in {o.customer.lower() for o in orders}:
                out[key] = doc if doc is not None else f"no customer {given}"
            return out
        for key in sorted({o.customer.lower() for o in orders}):
            if not key:
                out[key] = "no customer: give a customer column (customer id, account or name)"
                continue
            found = await self._pg(pg.customers_by_key, key)
            if len(found) == 1:
                out[key] = found[0]
            else:
                out[key] = (f"no customer {key!r} (by id, account or name)" if not found else
                            f"customer {key!r} is ambiguous: {len(found)} customers have this name")
        return out

    async def _csv_lookups(self, orders: list[csv_orders.CsvOrder], customers: dict[str, Any]):
        upc_list = sorted({line.upc for o in orders for line in o.lines if line.upc and not line.sku})
        upcs = await self._pg(pg.skus_by_upc, upc_list)
        refs: dict[str, dict[str, str]] = {}
        for o in orders:
            doc = customers.get(o.customer.lower())
            if isinstance(doc, dict) and doc["id"] not in refs:
                wanted = sorted({line.buyer_item for oo in orders if oo.customer.lower() == o.customer.lower()
                                 for line in oo.lines if line.buyer_item and not line.sku and not line.upc})
                refs[doc["id"]] = await self._pg(pg.item_refs, self.merchant, doc["id"], wanted)
        candidates = {line.sku for o in orders for line in o.lines if line.sku}
        candidates |= {s for skus in upcs.values() for s in skus}
        candidates |= {s for r in refs.values() for s in r.values()}
        return await self._skus(candidates), upcs, refs

    def _plan_csv(self, o: csv_orders.CsvOrder, customer: Any, given: str | None, lookups,
                  parsed: csv_orders.CsvOrders) -> _Placed:
        skus, upcs, refs = lookups
        outcome = OrderOutcome(po_number=o.po_number, status="rejected")
        problems = [_row_problem(e) for e in o.errors]
        col = parsed.columns
        if given is not None and o.customer and isinstance(customer, dict) and \
                o.customer.lower() not in (customer["id"].lower(), (customer.get("name") or "").lower(),
                                           (customer.get("account") or "").lower()):
            problems.append(Problem(message=f"the row names customer {o.customer!r}, the import is for {given}",
                                    line=o.first_line, column=col.get("customer")))
        if not isinstance(customer, dict):
            problems.append(Problem(message=str(customer), line=o.first_line, column=col.get("customer")))
            outcome.problems = problems
            return _Placed(outcome, None, "", {})
        cid = customer["id"]
        outcome.customer_id = cid
        profile = wholesale_profile(customer)
        merged: dict[str, list] = {}
        lines = []
        for line in o.lines:
            sku = None
            if line.sku:
                sku = line.sku if line.sku in skus else None
                why = f"unknown SKU {line.sku!r}"
                column = col.get("sku")
            elif line.upc:
                found = upcs.get(line.upc, [])
                sku = found[0] if len(found) == 1 and found[0] in skus else None
                why = f"no SKU has the UPC {line.upc!r}" if not found else f"UPC {line.upc!r} is on several SKUs"
                column = col.get("upc")
            else:
                mapped = refs.get(cid, {}).get(line.buyer_item)
                sku = mapped if mapped in skus else None
                why = f"buyer item {line.buyer_item!r} is not in the customer's cross-reference"
                column = col.get("buyer_item")
            lines.append(LineOutcome(line=str(line.line), item=line.item, sku=sku, units=line.quantity,
                                     error=None if sku else why))
            if sku is None:
                problems.append(Problem(message=why, line=line.line, column=column))
                continue
            if sku in merged:
                merged[sku][0] += line.quantity
                merged[sku][1] = merged[sku][1] or line.unit_price
            else:
                merged[sku] = [line.quantity, line.unit_price]
        outcome.lines = lines
        outcome.problems = problems
        placed = _Placed(outcome, None, operation_id_for(self.merchant, cid, o.po_number), {}, [])
        if problems:
            return placed  # all-or-nothing per order
        if len(merged) > MAX_ORDER_LINES:
            outcome.problems.append(Problem(message=f"{len(merged)} SKUs: an order has at most {MAX_ORDER_LINES}",
                                            line=o.first_line))
            return placed
        f = o.fields
        header = {k: v for k, v in {
            "customer_id": cid, "profile_id": profile.get("id"), "po_number": o.po_number,
            "payment_terms": profile.get("payment_terms"), "currency": f.get("currency"),
            "created_at_ms": int(time.time() * 1000), "ship_to": o.ship_to or profile.get("ship_to"),
            "notes": f.get("notes"), "source": "csv", "ship_date": f.get("ship_date"),
            "cancel_date": f.get("cancel_date"),
        }.items() if v}
        if any(p for _, p in merged.values()):
            header["lines"] = [{"unit_price": p} if p else {} for _, p in merged.values()]
        policy = profile.get("backorder_policy") or default_policy(Channel.WHOLESALE)
        placed.header = header
        placed.command = PlaceOrder(order_id=order_id_for(self.merchant, cid, o.po_number), channel="wholesale",
                                    policy=str(policy), doc=_encode.encode(header).decode(),
                                    lines=tuple(OrderLineRequest(sku=s, qty=q) for s, (q, _) in merged.items()))
        # the report's lines follow the order's (merged) lines
        placed.lines = [next(lo for lo in lines if lo.sku == s) for s in merged]
        outcome.order_id = placed.command.order_id
        return placed

    # ------------------------------------------------------------ CSV customers

    async def customers_csv(self, data: bytes, *, dry_run: bool = False, progress: Progress | None = None,
                            encoding: str = "utf-8", source: str | None = None) -> ImportReport:
        started = time.monotonic()
        report = ImportReport(kind="customers_csv", dry_run=dry_run, source=source)
        parsed = csv_customers.parse(data, encoding=encoding)
        if parsed.errors and not parsed.customers and parsed.rows == 0:
            report.ok = False
        for err in parsed.errors:
            report.customers.append(CustomerOutcome(line=err.line, name="", status="rejected",
                                                    problems=[_row_problem(err)]))
        for done, c in enumerate(parsed.customers, 1):
            report.customers.append(await self._customer(c, dry_run))
            if progress:
                progress("customers", done, len(parsed.customers))
        report.customers.sort(key=lambda c: c.line)
        report.seconds = time.monotonic() - started
        return report

    async def _customer(self, c: csv_customers.CsvCustomer, dry_run: bool) -> CustomerOutcome:
        cid = "cus_" + _hash("customer", self.merchant, c.key)[:16]
        outcome = CustomerOutcome(line=c.line, name=c.name, customer_id=cid, status="rejected")
        edi = c.profile.get("edi") or {}
        if edi.get("isa_id"):
            others = [p for p in await self._pg(pg.find_partners, edi["isa_qualifier"], edi["isa_id"],
                                                edi.get("gs_id")) if p.customer["id"] != cid]
            if others:
                outcome.problems.append(Problem(
                    message=f"EDI identity {edi['isa_qualifier']}/{edi['isa_id']} belongs to customer "
                            f"{others[0].customer['id']} ({others[0].customer.get('name')})", line=c.line))
                return outcome
        existing = await _customer_doc(self.store, cid)
        profiles = [p for p in (existing or {}).get("profiles") or [] if p.get("channel") != "wholesale"]
        old = wholesale_profile(existing or {})
        profile = {"id": old.get("id") or "prf_" + _hash("profile", cid)[:16], **c.profile}
        doc = {"id": cid, "name": c.name, "email": c.email, "phone": c.phone, "account": c.account or None,
               "profiles": [*profiles, profile],
               "created_at_ms": (existing or {}).get("created_at_ms") or int(time.time() * 1000)}
        if existing is not None and _same(existing, doc):
            outcome.status = "unchanged"
            return outcome
        if dry_run:
            outcome.status = "would_update" if existing else "would_create"
            return outcome
        text = _encode.encode(doc).decode()
        await self.store.run(PutRecord(kind="customer", id=cid, doc=text),
                             Op(op_id="cust-" + _hash(text)[:40], now_ms=int(time.time() * 1000), actor=self.actor,
                                idempotency_ttl_ms=self.settings.idempotency_ttl_s * 1000))
        outcome.status = "updated" if existing else "created"
        return outcome


def _same(a: dict, b: dict) -> bool:
    keys = ("name", "email", "phone", "account", "profiles")
    return all(a.get(k) == b.get(k) for k in keys)


async def _customer_doc(store: Store, customer_id: str) -> dict | None:
    raw = await store.redis.hget(f"{store.keys.prefix}:d:customer:{customer_id}", "doc")
    return msgspec.json.decode(raw) if raw else None


def new_import_id() -> str:
    return "imp_" + uuid.uuid4().hex[:16]
