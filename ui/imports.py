"""The import screen: a retailer's CSV of orders, a CSV of wholesale
customers, or an X12 850 file, checked first (a dry run: every row's
outcome, nothing changed), then imported on confirm.

The checked file waits for the confirm in Redis under the merchant's prefix
(``ui:import:<token>``, one hour, the user's own: another user's token is
no import), so the confirm imports exactly the bytes that were checked and
the browser does not send the file twice. An import is idempotent by
customer + PO number (exchange/), so a confirm sent twice creates nothing
twice. The outgoing EDI documents of an order are on its page
(ui/orders.py), downloadable here.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Template

from api.customers import load_customer
from api.services import Services
from exchange.imports import Importer
from exchange.report import ImportReport
from persistence import edi as pg
from ui.base import current_user, page

#: How long a checked file waits for its confirm, seconds.
PENDING_S = 3600
KINDS = {"orders": "Orders (CSV, one row per line)", "customers": "Wholesale customers (CSV)",
         "x12": "X12 850 purchase orders (EDI)"}
Token = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
IdPath = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class _Pending(msgspec.Struct, kw_only=True):
    user_id: str
    kind: str
    customer_id: str | None
    filename: str | None
    content: bytes


_pending = msgspec.msgpack.Decoder(_Pending)


def _key(services: Services, token: str) -> str:
    return f"{services.store.keys.prefix}:ui:import:{token}"


async def _run(services: Services, importer: Importer, p: _Pending, *, dry_run: bool) -> ImportReport:
    if p.kind == "orders":
        return await importer.orders_csv(p.content, customer_id=p.customer_id, dry_run=dry_run, source=p.filename)
    if p.kind == "customers":
        return await importer.customers_csv(p.content, dry_run=dry_run, source=p.filename)
    return await importer.x12(p.content, dry_run=dry_run, source=p.filename)


def _importer(services: Services, actor: str) -> Importer:
    if services.pg is None:
        from engine.errors import NotReady

        raise NotReady("PostgreSQL is not configured")
    return Importer(services.store, services.pg, services.settings, actor=actor)


class ImportController(Controller):
    path = "/ui/import"

    def _form(self, request: Request, *, status_code: int = 200, error: str | None = None, **context) -> Template:
        return page(request, "import.html", title="Import", status_code=status_code, kinds=KINDS, error=error,
                    **{"report": None, "token": None, "kind": "orders", "customer_id": "", **context})

    @get("/")
    async def form(self, request: Request) -> Template:
        return self._form(request)

    @post("/check")
    async def check(self, request: Request, services: NamedDependency[Services],
                    data: Annotated[dict, Body(media_type=RequestEncodingType.MULTI_PART)]) -> Template:
        """Reads the file (at most ONHAND_IMPORT_MAX_BYTES), reports what an
        import would do, and keeps the file for the confirm."""
        user = current_user(request)
        kind = str(data.get("kind") or "")
        customer_id = str(data.get("customer_id") or "").strip() or None
        upload = data.get("file")
        context = {"kind": kind if kind in KINDS else "orders", "customer_id": customer_id or ""}
        if kind not in KINDS:
            return self._form(request, status_code=400, error="Choose what the file holds.", **context)
        if not isinstance(upload, UploadFile):
            return self._form(request, status_code=400, error="Choose a file to import.", **context)
        limit = services.settings.import_max_bytes
        content = await upload.read(limit + 1)
        if len(content) > limit:
            return self._form(request, status_code=413, error=f"The file is over the import limit of {limit:,} bytes.",
                              **context)
        if not content:
            return self._form(request, status_code=400, error="The file is empty.", **context)
        if customer_id is not None and (kind != "orders" or await load_customer(services, customer_id) is None):
            return self._form(request, status_code=400, error="No such customer (a customer applies to order CSVs).",
                              **context)
        pending = _Pending(user_id=user.id, kind=kind, customer_id=customer_id, filename=upload.filename,
                           content=content)
        report = await _run(services, _importer(services, user.actor), pending, dry_run=True)
        token = None
        if report.ok and _would_change(report):
            token = secrets.token_urlsafe(24)
            await services.redis.set(_key(services, token), msgspec.msgpack.encode(pending), ex=PENDING_S)
        return self._form(request, report=report, counts=report.counts(), token=token,
                          filename=upload.filename, **context)

    @post("/confirm")
    async def confirm(self, request: Request, services: NamedDependency[Services],
                      data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Template:
        user = current_user(request)
        token = data.get("token") or ""
        raw = await services.redis.get(_key(services, token)) if token.replace("-", "").replace("_", "").isalnum() \
            and 16 <= len(token) <= 64 else None
        pending = _pending.decode(raw) if raw else None
        if pending is None or pending.user_id != user.id:
            return self._form(request, status_code=410,
                              error="That check has expired or is not yours: choose the file and check it again.")
        report = await _run(services, _importer(services, user.actor), pending, dry_run=False)
        await services.redis.delete(_key(services, token))
        return self._form(request, report=report, counts=report.counts(), filename=pending.filename,
                          kind=pending.kind, customer_id=pending.customer_id or "", imported=True)

    @get("/documents/{doc_id:str}")
    async def document(self, doc_id: IdPath, services: NamedDependency[Services]) -> Response:
        """An outgoing EDI document's X12 bytes (997, 855, 856, 810)."""
        if services.pg is None:
            return Response("PostgreSQL is not configured", status_code=503, media_type="text/plain")
        async with services.pg.connect() as conn:
            doc = await conn.run_sync(lambda c: pg.get_document(c, services.store.keys.merchant, doc_id))
        if doc is None or doc.content is None:
            return Response("no such document", status_code=404, media_type="text/plain")
        return Response(doc.content.encode("ascii"), media_type="application/edi-x12", headers={
            "Content-Disposition": f'attachment; filename="{doc.filename}"'})


def _would_change(report: ImportReport) -> bool:
    return any(o.status == "would_create" for o in report.orders) or any(
        c.status in ("would_create", "would_update") for c in report.customers) or (
        report.kind == "x12" and bool(report.orders or report.groups))
