"""The inventory ledger: every movement of every SKU, as PostgreSQL holds it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from api import schemas as s
from api.auth import STAFF, requires
from api.docs import responses
from api.problems import VALIDATION, ApiProblem
from api.services import Services
from api.views import rfc3339
from persistence import queries

Text = Annotated[str | None, Parameter(max_length=128, pattern=r"^[^\x00-\x1f]*$")]
#: RFC 3339 date-time (Litestar's own datetime parameters also take 0.5 as a time)
RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
#: Query parameters that are RFC 3339 times (api/docs.py marks them format: date-time).
TIME_PARAMETERS = ("since", "until")


def ledger_view(row) -> s.LedgerEntryView:
    return s.LedgerEntryView(
        id=row.id, at=rfc3339(row.at.timestamp() * 1000), sku=row.sku, order_id=row.order_id,
        reason=row.reason, kind=row.kind, actor=row.actor, operation_id=row.op_id,
        on_hand=row.d_on_hand, reserved_dtc=row.d_reserved_dtc, reserved_wholesale=row.d_reserved_wholesale,
        backordered_dtc=row.d_backordered_dtc, backordered_wholesale=row.d_backordered_wholesale,
        exception=row.d_exception, units=row.units)


def _time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    m = RFC3339.match(value)
    try:
        if m is None:
            raise ValueError("expected e.g. 2026-12-01T09:30:00Z")
        date, clock, fraction, zone = m.groups()
        fraction = (fraction or "")[:7]  # microseconds at most
        return datetime.fromisoformat(f"{date}T{clock}{fraction}{'+00:00' if zone in 'Zz' else zone}")
    except ValueError as exc:
        raise ApiProblem(VALIDATION, f"{name} is not an RFC 3339 time",
                         errors=[{"field": name, "message": str(exc)}]) from exc


class LedgerController(Controller):
    tags = ["inventory"]

    @get("/v1/ledger", guards=[requires(*STAFF)], responses=responses(400, 401, 403, 429, 503),
         summary="Inventory movements, newest first (PostgreSQL's ledger; pending_events says "
                 "how many accepted changes have not reached it yet)")
    async def ledger(
        self, services: NamedDependency[Services],
        sku: Annotated[str | None, Parameter(pattern=r"^[^\x00-\x1f]{1,255}$")] = None,
        order_id: Annotated[str | None, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
        reason: Text = None, actor: Text = None,
        since: Annotated[str | None, Parameter(max_length=64, description="RFC 3339, inclusive")] = None,
        until: Annotated[str | None, Parameter(max_length=64, description="RFC 3339, exclusive")] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0,
    ) -> s.LedgerList:
        f = queries.LedgerFilter(sku=sku, order_id=order_id, reason=reason, actor=actor,
                                 since=_time("since", since), until=_time("until", until))
        merchant = services.store.keys.merchant
        rows, total = await services.reader.pg_call(lambda conn: queries.ledger(conn, merchant, f, limit, offset))
        pending = await services.redis.xlen(services.store.keys.outbox)
        return s.LedgerList(items=[ledger_view(r) for r in rows], total=total, pending_events=pending)
