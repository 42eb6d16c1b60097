"""Documents over HTTP: uploads of CSV orders, CSV customers and X12 850s;
the outgoing EDI documents (listed, downloaded, an 856 re-checked); carton
labels; invoices (open AR); the buyer-item cross-reference; a profile's
update (its EDI partner options).

Uploads are multipart/form-data with the file in ``file``, limited to
UPLOAD_MAX_BYTES and refused with 413 before anything is parsed (Litestar
checks Content-Length first and counts a streamed body as it arrives).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, JSONBody, Parameter

from api import document_schemas as d
from api.auth import STAFF, Principal, requires
from api.customers import customer_view, load_customer, visible
from api.docs import responses
from api.orders import visible_order
from api.problems import NOT_FOUND, TOO_LARGE, VALIDATION, ApiProblem
from api.services import Services
from engine.commands import PutRecord
from engine.errors import NotReady
from exchange.imports import Importer
from exchange.report import ImportReport
from persistence import edi as pg
from persistence import invoices as inv

#: Largest upload body, bytes: the 10 MiB import limit plus room for the
#: multipart envelope (ONHAND_IMPORT_MAX_BYTES may lower the file's limit).
UPLOAD_MAX_BYTES = 10 * 1024 * 1024 + 64 * 1024
IdPath = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Limit = Annotated[int, Parameter(ge=1, le=200)]
Offset = Annotated[int, Parameter(ge=0, le=10**9)]
DryRun = Annotated[bool, Parameter(description="check and report everything, change nothing")]


@dataclass
class Upload:
    """multipart/form-data: the file in ``file``."""

    file: UploadFile


Multipart = Body(media_type=RequestEncodingType.MULTI_PART)


def _pg(services: Services):
    if services.pg is None:
        raise NotReady("PostgreSQL is not configured")
    return services.pg


async def _run(services: Services, fn, *args):
    async with _pg(services).begin() as conn:
        return await conn.run_sync(lambda c: fn(c, *args))


async def _content(services: Services, data: Upload) -> bytes:
    limit = services.settings.import_max_bytes
    content = await data.file.read(limit + 1)
    if len(content) > limit:
        raise ApiProblem(TOO_LARGE, f"the file is over the import limit of {limit} bytes")
    return content


def _importer(services: Services, principal: Principal) -> Importer:
    return Importer(services.store, _pg(services), services.settings, actor=f"key:{principal.key_id}")


def _answer(report: ImportReport) -> Response:
    """200 with the report, also for a file refused as a whole (``ok`` is
    false and ``problems`` say why): the upload was well-formed, what it
    holds is what the report is about, and nothing was changed."""
    return Response(msgspec.to_builtins(report), status_code=200)


def _rfc3339(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def document_view(doc) -> d.EdiDocumentView:
    return d.EdiDocumentView(
        id=doc.id, kind=doc.kind, status=doc.status, customer_id=doc.customer_id, order_id=doc.order_id,
        shipment_id=doc.shipment_id, po_number=doc.po_number, partner=doc.partner,
        interchange_control=doc.isa_control, group_control=doc.gs_control,
        transaction_set_controls=list(doc.st_controls or []), reason=doc.reason, filename=doc.filename,
        created_at=_rfc3339(doc.created_at), sent_at=_rfc3339(doc.sent_at))


def invoice_view(row, today) -> d.InvoiceView:
    return d.InvoiceView(
        id=row.id, number=row.number, order_id=row.order_id, shipment_id=row.shipment_id,
        customer_id=row.customer_id, po_number=row.po_number, payment_terms=row.payment_terms,
        currency=row.currency, invoice_date=row.invoice_date.isoformat(), due_date=row.due_date.isoformat(),
        status="overdue" if row.due_date < today else "open", total=format(row.total, "f"),
        lines=[d.InvoiceLineView(sku=x["sku"], quantity=int(x["quantity"]), unit_price=x.get("unit_price"),
                                 amount=x.get("amount")) for x in row.lines])


class ImportController(Controller):
    tags = ["imports"]

    @post("/v1/imports/orders", status_code=200,
          request_max_body_size=UPLOAD_MAX_BYTES, responses=responses(400, 401, 403, 404, 413, 429, 503),
          summary="Import wholesale orders from a CSV (one row per line); dry_run checks every row")
    async def orders(self, request: Request, services: NamedDependency[Services],
                     data: Annotated[Upload, Multipart], dry_run: DryRun = False,
                     customer_id: Annotated[str | None, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
                     encoding: Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = "utf-8") -> Any:
        principal: Principal = request.user
        if principal.is_wholesale:
            if customer_id is not None and customer_id != principal.customer_id:
                raise ApiProblem(NOT_FOUND, "no such customer")
            customer_id = principal.customer_id
        elif customer_id is not None and await load_customer(services, customer_id) is None:
            raise ApiProblem(NOT_FOUND, "no such customer")
        report = await _importer(services, principal).orders_csv(
            await _content(services, data), customer_id=customer_id, dry_run=dry_run, encoding=encoding,
            source=data.file.filename)
        return _answer(report)

    @post("/v1/imports/customers", guards=[requires(*STAFF)], status_code=200,
          request_max_body_size=UPLOAD_MAX_BYTES, responses=responses(400, 401, 403, 413, 429, 503),
          summary="Import wholesale customers with their profiles from a CSV")
    async def customers(self, request: Request, services: NamedDependency[Services],
                        data: Annotated[Upload, Multipart], dry_run: DryRun = False,
                        encoding: Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = "utf-8") -> Any:
        report = await _importer(services, request.user).customers_csv(
            await _content(services, data), dry_run=dry_run, encoding=encoding, source=data.file.filename)
        return _answer(report)

    @post("/v1/edi/imports", guards=[requires(*STAFF)], status_code=200,
          request_max_body_size=UPLOAD_MAX_BYTES, responses=responses(400, 401, 403, 413, 429, 503),
          summary="Import an X12 file of 850 purchase orders; answers the 997s and 855s it recorded")
    async def x12(self, request: Request, services: NamedDependency[Services],
                  data: Annotated[Upload, Multipart], dry_run: DryRun = False) -> Any:
        report = await _importer(services, request.user).x12(
            await _content(services, data), dry_run=dry_run, source=data.file.filename)
        return _answer(report)


class EdiDocumentController(Controller):
    tags = ["edi"]

    @get("/v1/edi/documents", responses=responses(400, 401, 429, 503),
         summary="Outgoing EDI documents (997, 855, 856, 810), newest first")
    async def list_documents(
        self, request: Request, services: NamedDependency[Services],
        kind: Annotated[str | None, Parameter(pattern="^(997|855|856|810)$")] = None,
        status: Annotated[str | None, Parameter(pattern="^(ready|sent|blocked|skipped)$")] = None,
        customer_id: Annotated[str | None, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
        order_id: Annotated[str | None, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
        shipment_id: Annotated[str | None, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
        limit: Limit = 50, offset: Offset = 0,
    ) -> d.EdiDocumentList:
        principal: Principal = request.user
        if principal.is_wholesale:
            if customer_id is not None and customer_id != principal.customer_id:
                return d.EdiDocumentList(items=[], total=0)
            customer_id = principal.customer_id
        f = pg.DocumentFilter(kind=kind, status=status, customer_id=customer_id, order_id=order_id,
                              shipment_id=shipment_id)
        rows, total = await _run(services, pg.list_documents, services.store.keys.merchant, f, limit, offset)
        return d.EdiDocumentList(items=[document_view(r) for r in rows], total=total)

    async def _visible(self, request: Request, services: Services, doc_id: str):
        doc = await _run(services, pg.get_document, services.store.keys.merchant, doc_id)
        principal: Principal = request.user
        if doc is None or (principal.is_wholesale and doc.customer_id != principal.customer_id):
            raise ApiProblem(NOT_FOUND, "no such document")
        return doc

    @get("/v1/edi/documents/{doc_id:str}",
         responses=responses(400, 401, 404, 429, 503), summary="An outgoing EDI document")
    async def get_document(self, doc_id: IdPath, request: Request,
                           services: NamedDependency[Services]) -> d.EdiDocumentView:
        return document_view(await self._visible(request, services, doc_id))

    @get("/v1/edi/documents/{doc_id:str}/content", media_type="application/edi-x12",
         responses=responses(400, 401, 404, 429, 503), summary="The document's X12 bytes")
    async def content(self, doc_id: IdPath, request: Request, services: NamedDependency[Services]) -> Response[bytes]:
        doc = await self._visible(request, services, doc_id)
        if doc.content is None:
            raise ApiProblem(NOT_FOUND, f"the document is {doc.status}: it has no content ({doc.reason})")
        return Response(doc.content.encode("ascii"), media_type="application/edi-x12", headers={
            "Content-Disposition": f'attachment; filename="{doc.filename}"'})

    @post("/v1/edi/documents/{doc_id:str}/recheck", guards=[requires(*STAFF)], status_code=202,
          responses=responses(400, 401, 403, 404, 409, 429, 503),
          summary="Check a blocked 856 again (after fixing what its reason names)")
    async def recheck(self, doc_id: IdPath, request: Request, services: NamedDependency[Services]) -> d.EdiDocumentView:
        doc = await self._visible(request, services, doc_id)
        if doc.status != "blocked":
            from api.problems import CONFLICT

            raise ApiProblem(CONFLICT, f"the document is {doc.status}, not blocked", reason="not_blocked")
        await _run(services, pg.unblock, services.store.keys.merchant, doc_id)
        return document_view(doc)

    @get("/v1/orders/{order_id:str}/edi-documents",
         responses=responses(400, 401, 404, 429, 503), summary="The EDI documents of an order")
    async def of_order(self, order_id: IdPath, request: Request,
                       services: NamedDependency[Services]) -> d.EdiDocumentList:
        await visible_order(services, request.user, order_id)
        rows, total = await _run(services, pg.list_documents, services.store.keys.merchant,
                                 pg.DocumentFilter(order_id=order_id), 200, 0)
        return d.EdiDocumentList(items=[document_view(r) for r in rows], total=total)

    @get("/v1/orders/{order_id:str}/shipments/{shipment_id:str}/labels.pdf", guards=[requires(*STAFF)],
         media_type="application/pdf", responses=responses(400, 401, 403, 404, 409, 429, 503),
         summary="GS1-128 SSCC carton labels of a shipment (one 4x6 page per carton)")
    async def labels(self, order_id: IdPath, shipment_id: IdPath, request: Request,
                     services: NamedDependency[Services]) -> Response[bytes]:
        from api.pdf import carton_labels

        order = await visible_order(services, request.user, order_id)
        shipment = next((x for x in order.shipments if x["id"] == shipment_id), None)
        if shipment is None:
            raise ApiProblem(NOT_FOUND, "no such shipment on this order")
        if not any(c.get("sscc") for c in shipment.get("cartons") or []):
            from api.problems import CONFLICT

            raise ApiProblem(CONFLICT, "the shipment has no cartons with SSCCs", reason="no_ssccs")
        pdf = carton_labels(order, shipment, merchant=services.settings.merchant_name)
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="labels-{shipment_id}.pdf"'})


class InvoiceController(Controller):
    tags = ["invoices"]

    @get("/v1/invoices", responses=responses(400, 401, 429, 503),
         summary="Invoices (open AR), newest first; status open (not yet due) or overdue")
    async def list_invoices(
        self, request: Request, services: NamedDependency[Services],
        customer_id: Annotated[str | None, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
        status: Annotated[str | None, Parameter(pattern="^(open|overdue)$")] = None,
        order_id: Annotated[str | None, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
        limit: Limit = 50, offset: Offset = 0,
    ) -> d.InvoiceList:
        principal: Principal = request.user
        if principal.is_wholesale:
            if customer_id is not None and customer_id != principal.customer_id:
                return d.InvoiceList(items=[], total=0)
            customer_id = principal.customer_id
        today = datetime.now(UTC).date()
        rows, total = await _run(services, inv.list_invoices, services.store.keys.merchant,
                                 inv.InvoiceFilter(customer_id=customer_id, status=status, order_id=order_id),
                                 today, limit, offset)
        return d.InvoiceList(items=[invoice_view(r, today) for r in rows], total=total)

    @get("/v1/invoices/{invoice_id:str}",
         responses=responses(400, 401, 404, 429, 503), summary="An invoice")
    async def get_invoice(self, invoice_id: IdPath, request: Request,
                          services: NamedDependency[Services]) -> d.InvoiceView:
        row = await _run(services, inv.get_invoice, services.store.keys.merchant, invoice_id)
        principal: Principal = request.user
        if row is None or (principal.is_wholesale and row.customer_id != principal.customer_id):
            raise ApiProblem(NOT_FOUND, "no such invoice")
        return invoice_view(row, datetime.now(UTC).date())


class PartnerController(Controller):
    """A customer's EDI side: its buyer-item cross-reference and profile options."""

    tags = ["customers"]

    async def _customer(self, services: Services, principal: Principal, customer_id: str) -> dict:
        doc = await load_customer(services, customer_id) if visible(principal, customer_id) else None
        if doc is None:
            raise ApiProblem(NOT_FOUND, "no such customer")
        return doc

    @get("/v1/customers/{customer_id:str}/item-references",
         responses=responses(400, 401, 404, 429, 503), summary="The customer's buyer item -> SKU cross-reference")
    async def refs(self, customer_id: IdPath, request: Request, services: NamedDependency[Services]) -> d.ItemRefList:
        await self._customer(services, request.user, customer_id)
        refs = await _run(services, pg.item_refs, services.store.keys.merchant, customer_id)
        return d.ItemRefList(items=[d.ItemRefView(buyer_item=k, sku=v) for k, v in refs.items()])

    @put("/v1/customers/{customer_id:str}/item-references", guards=[requires(*STAFF)],
         responses=responses(400, 401, 403, 404, 413, 429, 503),
         summary="Add or change buyer item -> SKU entries (others are kept)")
    async def put_refs(self, customer_id: IdPath, request: Request,
                       services: NamedDependency[Services], data: JSONBody[d.ItemRefsBody]) -> d.ItemRefList:
        from api.schemas import strict_body

        body = await strict_body(request, d.ItemRefsBody)
        await self._customer(services, request.user, customer_id)
        skus = sorted({x.sku for x in body.items})
        missing = [s for s, i in zip(skus, await services.store.inventory(skus), strict=True) if i is None]
        if missing:
            raise ApiProblem(NOT_FOUND, "unknown SKU", errors=[{"kind": "sku", "id": s} for s in missing])
        merchant = services.store.keys.merchant
        await _run(services, pg.put_item_refs, merchant, customer_id, {x.buyer_item: x.sku for x in body.items})
        refs = await _run(services, pg.item_refs, merchant, customer_id)
        return d.ItemRefList(items=[d.ItemRefView(buyer_item=k, sku=v) for k, v in refs.items()])

    @delete("/v1/customers/{customer_id:str}/item-references", guards=[requires(*STAFF)], status_code=204,
            responses=responses(400, 401, 403, 404, 429, 503), summary="Remove one buyer item's entry")
    async def delete_ref(self, customer_id: IdPath, request: Request, services: NamedDependency[Services],
                         buyer_item: Annotated[str, Parameter(min_length=1, max_length=128)]) -> None:
        await self._customer(services, request.user, customer_id)
        if not await _run(services, pg.delete_item_ref, services.store.keys.merchant, customer_id, buyer_item):
            raise ApiProblem(NOT_FOUND, "no such buyer item for this customer")

    @put("/v1/customers/{customer_id:str}/profiles/{profile_id:str}", guards=[requires(*STAFF)],
         responses=responses(400, 401, 403, 404, 413, 422, 429, 503),
         summary="Replace one profile (terms, policy, ship-to, EDI partner options)")
    async def put_profile(self, customer_id: IdPath, profile_id: IdPath, request: Request,
                          services: NamedDependency[Services], data: JSONBody[d.PutProfileBody]) -> Any:
        from api.schemas import strict_body

        body = await strict_body(request, d.PutProfileBody)

        async def build() -> PutRecord:
            doc = await self._customer(services, request.user, customer_id)
            profiles = doc.get("profiles") or []
            current = next((p for p in profiles if p["id"] == profile_id), None)
            if current is None:
                raise ApiProblem(NOT_FOUND, "no such profile for this customer")
            if current["channel"] != body.channel:
                raise ApiProblem(VALIDATION, "a profile's channel cannot change",
                                 errors=[{"field": "channel", "message": "differs from the profile's"}])
            if body.edi is not None and services.pg is not None:
                others = [p for p in await _run(services, pg.find_partners, services.merchant, body.edi.isa_qualifier,
                                                body.edi.isa_id, body.edi.gs_id)
                          if p.customer["id"] != customer_id]
                if others:
                    from api.problems import CONFLICT

                    raise ApiProblem(CONFLICT, f"this EDI identity belongs to customer {others[0].customer['id']}",
                                     reason="edi_identity_used")
            new = {"id": profile_id, **msgspec.to_builtins(body)}
            doc = {**doc, "profiles": [new if p["id"] == profile_id else p for p in profiles]}
            return PutRecord(kind="customer", id=customer_id, doc=msgspec.json.encode(doc).decode())

        result = await services.operations.run(request.scope, request.user, body, build)
        return customer_view(msgspec.json.decode(result.data["doc"]))
