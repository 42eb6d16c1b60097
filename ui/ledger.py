"""The inventory ledger with filters, paged, and as CSV (every matching row)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import Stream, Template

from api.services import Services
from persistence import queries
from ui.base import page

Text = Annotated[str, Parameter(max_length=128, pattern=r"^[^\x00-\x1f]*$")]
Day = Annotated[str, Parameter(pattern=r"^(|\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?)?)$")]
#: The reasons lua/ writes (count.lua writes "count:<why>" and "adjust:<why>").
REASONS = ("reserve", "fill", "ship", "cancel", "receipt", "exception", "take_back", "return_restock",
           "return_write_off", "count:count", "adjust:damage", "adjust:found", "adjust:count", "adjust:other",
           "test_order")
#: Rows per PostgreSQL read while exporting CSV.
CSV_CHUNK = 5000
COLUMNS = ("at", "sku", "order_id", "reason", "kind", "actor", "on_hand", "reserved_dtc", "reserved_wholesale",
           "backordered_dtc", "backordered_wholesale", "exception", "units", "operation_id")


def _time(value: str) -> datetime | None:
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


def _filter(sku: str, order_id: str, reason: str, actor: str, since: str, until: str) -> queries.LedgerFilter:
    return queries.LedgerFilter(sku=sku.strip() or None, order_id=order_id.strip() or None,
                                reason=reason or None, actor=actor.strip() or None,
                                since=_time(since), until=_time(until))


def _csv_row(r) -> list:
    return [r.at.isoformat(timespec="milliseconds"), r.sku, r.order_id or "", r.reason, r.kind, r.actor,
            r.d_on_hand, r.d_reserved_dtc, r.d_reserved_wholesale, r.d_backordered_dtc, r.d_backordered_wholesale,
            r.d_exception, r.units, r.op_id]


class LedgerController(Controller):
    path = "/ui"

    @get("/ledger")
    async def ledger(self, request: Request, services: NamedDependency[Services], sku: Text = "",
                     order_id: Text = "", reason: Text = "", actor: Text = "", since: Day = "", until: Day = "",
                     limit: Annotated[int, Parameter(ge=25, le=250)] = 50,
                     offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0) -> Template:
        f = _filter(sku, order_id, reason, actor, since, until)
        rows, total = await services.reader.pg_call(lambda conn: queries.ledger(conn, services.store.keys.merchant, f, limit, offset))
        pending = await services.redis.xlen(services.store.keys.outbox)
        query = {"sku": sku, "order_id": order_id, "reason": reason, "actor": actor, "since": since,
                 "until": until}
        from urllib.parse import urlencode

        qs = urlencode({k: v for k, v in query.items() if v})
        return page(request, "ledger.html", title="Inventory ledger", rows=rows, total=total, pending=pending,
                    query=query, reasons=REASONS, limit=limit, offset=offset, qs=qs)

    @get("/ledger.csv")
    async def ledger_csv(self, services: NamedDependency[Services], sku: Text = "", order_id: Text = "",
                         reason: Text = "", actor: Text = "", since: Day = "", until: Day = "") -> Stream:
        f = _filter(sku, order_id, reason, actor, since, until)

        async def rows():
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(COLUMNS)
            offset = 0
            while True:
                chunk, _ = await services.reader.pg_call(lambda conn: queries.ledger(conn, services.store.keys.merchant, f, CSV_CHUNK, offset))
                for r in chunk:
                    writer.writerow(_csv_row(r))
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
                if len(chunk) < CSV_CHUNK:
                    return
                offset += CSV_CHUNK

        return Stream(rows(), media_type="text/csv; charset=utf-8",
                      headers={"Content-Disposition": 'attachment; filename="ledger.csv"'})
