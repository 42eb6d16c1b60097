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

import msgspec

import dataclasses
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from documents.x12 import ack997, po850
from documents.x12 import errors as x12e
from documents.x12.reader import Group, Interchange, X12Error, read
from engine.commands import OrderLineRequest, PlaceOrder
from engine.model import MAX_ORDER_LINES, Channel, Order, default_policy
from exchange import items as item_map
from exchange import outgoing
from exchange.csv_imports import CsvImports
from exchange.placing import (Placed, Progress, segment_problem, operation_id_for,  # noqa: F401
                              order_id_for)
from exchange.report import DocumentRef, ImportReport, LineOutcome, OrderOutcome, Problem
from persistence import edi as pg

_encode = msgspec.json.Encoder()


class Importer(CsvImports):
    """Imports X12 850s (here) and CSV orders and customers (exchange/csv_imports.py)."""

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
            partners = await self._pg(pg.find_partners, self.merchant, ic.sender_qualifier, ic.sender_id, group.sender)
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
                                           problems=[segment_problem(e) for e in po.errors])
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
                         pos: list[po850.PurchaseOrder], at: datetime) -> list[Placed]:
        customer, profile = partner.customer, partner.profile
        qualifiers = partner.edi.get("item_qualifiers") or item_map.DEFAULT_QUALIFIERS
        all_pairs = [line.ids for po in pos for line in po.lines]
        upcs = await self._pg(pg.skus_by_upc, self.merchant, item_map.upcs_wanted(all_pairs))
        refs = await self._pg(pg.item_refs, self.merchant, customer["id"], item_map.buyer_items_wanted(all_pairs))
        candidates = set(item_map.vendor_items_wanted(all_pairs)) | set(refs.values()) | \
            {s for skus in upcs.values() for s in skus}
        lookups = item_map.Lookups(await self._skus(candidates), upcs, refs)
        us = outgoing.Identity(ic.receiver_qualifier, ic.receiver_id, group.receiver)
        return [self._plan_850(po, ic, group, customer, profile, qualifiers, lookups, us, at) for po in pos]

    def _plan_850(self, po: po850.PurchaseOrder, ic: Interchange, group: Group, customer: dict,
                  profile: dict, qualifiers: list[str], lookups: item_map.Lookups,
                  us: outgoing.Identity, at: datetime) -> Placed:
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
        placed = Placed(outcome, None, operation_id_for(self.merchant, cid, po.po_number), header,
                         placed_lines + rejected_lines, len(placed_lines))
        outcome.lines = placed.lines
        outcome.problems = [segment_problem(e) for e in po.line_errors]
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

    async def _acknowledge_po(self, placed: Placed, order: Order | None, partner: pg.Partner,
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

