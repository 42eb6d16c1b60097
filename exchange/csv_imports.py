"""CSV imports: wholesale orders (one row per line) and wholesale customers
(one row per customer with its profile). See exchange/imports.py."""

from __future__ import annotations

import msgspec

import time
from typing import Any

from documents import csv_customers, csv_orders
from engine.commands import OrderLineRequest, Op, PlaceOrder, PutRecord
from engine.model import MAX_ORDER_LINES, Channel, default_policy
from exchange.placing import (ImporterBase, Placed, Progress, customer_doc, digest, operation_id_for, order_id_for,
                              row_problem, unsynced_customers, wholesale_profile)
from exchange.report import CustomerOutcome, ImportReport, LineOutcome, OrderOutcome, Problem
from persistence import edi as pg

_encode = msgspec.json.Encoder()


class CsvImports(ImporterBase):
    # ------------------------------------------------------------ CSV orders

    async def orders_csv(self, data: bytes, *, customer_id: str | None = None, dry_run: bool = False,
                         progress: Progress | None = None, encoding: str = "utf-8",
                         source: str | None = None) -> ImportReport:
        started = time.monotonic()
        report = ImportReport(kind="orders_csv", dry_run=dry_run, source=source)
        parsed = csv_orders.parse(data, encoding=encoding)
        if parsed.errors and not parsed.orders:
            report.ok = False
            report.problems = [row_problem(e) for e in parsed.errors]
            return report
        report.problems = [row_problem(e) for e in parsed.errors]
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
            doc = await customer_doc(self.store, given)
            for key in {o.customer.lower() for o in orders}:
                out[key] = doc if doc is not None else f"no customer {given}"
            return out
        recent = await unsynced_customers(self.store)
        newer = {c["id"] for c in recent}
        for key in sorted({o.customer.lower() for o in orders}):
            if not key:
                out[key] = "no customer: give a customer column (customer id, account or name)"
                continue
            # PostgreSQL's rows, but where Redis holds a newer version of the record
            found = [c for c in await self._pg(pg.customers_by_key, self.merchant, key) if c["id"] not in newer]
            found += [c for c in recent if key in (c["id"].lower(), (c.get("name") or "").strip().lower(),
                                                   account_of(c).lower())]
            if len(found) == 1:
                out[key] = found[0]
            else:
                out[key] = (f"no customer {key!r} (by id, account or name)" if not found else
                            f"customer {key!r} is ambiguous: {len(found)} customers have this name")
        return out

    async def _csv_lookups(self, orders: list[csv_orders.CsvOrder], customers: dict[str, Any]):
        upc_list = sorted({line.upc for o in orders for line in o.lines if line.upc and not line.sku})
        upcs = await self._pg(pg.skus_by_upc, self.merchant, upc_list)
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
                  parsed: csv_orders.CsvOrders) -> Placed:
        skus, upcs, refs = lookups
        outcome = OrderOutcome(po_number=o.po_number, status="rejected")
        problems = [row_problem(e) for e in o.errors]
        col = parsed.columns
        if given is not None and o.customer and isinstance(customer, dict) and \
                o.customer.lower() not in (customer["id"].lower(), (customer.get("name") or "").lower(),
                                           account_of(customer).lower()):
            problems.append(Problem(message=f"the row names customer {o.customer!r}, the import is for {given}",
                                    line=o.first_line, column=col.get("customer")))
        if not isinstance(customer, dict):
            problems.append(Problem(message=str(customer), line=o.first_line, column=col.get("customer")))
            outcome.problems = problems
            return Placed(outcome, None, "", {})
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
        placed = Placed(outcome, None, operation_id_for(self.merchant, cid, o.po_number), {}, [])
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
                                                    problems=[row_problem(err)]))
        for done, c in enumerate(parsed.customers, 1):
            report.customers.append(await self._customer(c, dry_run))
            if progress:
                progress("customers", done, len(parsed.customers))
        report.customers.sort(key=lambda c: c.line)
        report.seconds = time.monotonic() - started
        return report

    async def _customer(self, c: csv_customers.CsvCustomer, dry_run: bool) -> CustomerOutcome:
        cid = "cus_" + digest("customer", self.merchant, c.key)[:16]
        outcome = CustomerOutcome(line=c.line, name=c.name, customer_id=cid, status="rejected")
        edi = c.profile.get("edi") or {}
        if edi.get("isa_id"):
            others = [p for p in await self._pg(pg.find_partners, self.merchant, edi["isa_qualifier"], edi["isa_id"],
                                                edi.get("gs_id")) if p.customer["id"] != cid]
            if others:
                outcome.problems.append(Problem(
                    message=f"EDI identity {edi['isa_qualifier']}/{edi['isa_id']} belongs to customer "
                            f"{others[0].customer['id']} ({others[0].customer.get('name')})", line=c.line))
                return outcome
        existing = await customer_doc(self.store, cid)
        profiles = [p for p in (existing or {}).get("profiles") or [] if p.get("channel") != "wholesale"]
        old = wholesale_profile(existing or {})
        profile = {"id": old.get("id") or "prf_" + digest("profile", cid)[:16], **c.profile}
        # what the file does not name (company, other fields set through the
        # API or the UI) stays as it was
        doc = {**(existing or {}), "id": cid, "name": c.name, "email": c.email, "phone": c.phone,
               "account_number": c.account or account_of(existing or {}) or None,
               "profiles": [*profiles, profile],
               "created_at_ms": (existing or {}).get("created_at_ms") or int(time.time() * 1000)}
        doc.pop("account", None)  # the import's name for it before the API had account_number
        if existing is not None and _same(existing, doc):
            outcome.status = "unchanged"
            return outcome
        if dry_run:
            outcome.status = "would_update" if existing else "would_create"
            return outcome
        text = _encode.encode(doc).decode()
        await self.store.run(PutRecord(kind="customer", id=cid, doc=text),
                             Op(op_id="cust-" + digest(text)[:40], now_ms=int(time.time() * 1000), actor=self.actor,
                                idempotency_ttl_ms=self.settings.idempotency_ttl_s * 1000))
        outcome.status = "updated" if existing else "created"
        return outcome



def account_of(customer: dict) -> str:
    """The customer's account number (``account`` in records imported before
    the API named it ``account_number``)."""
    return customer.get("account_number") or customer.get("account") or ""


def _same(a: dict, b: dict) -> bool:
    keys = ("name", "email", "phone", "profiles")
    return all(a.get(k) == b.get(k) for k in keys) and account_of(a) == account_of(b)
