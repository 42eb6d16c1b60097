"""Bodies of the documents' routes: imports, EDI documents, invoices, the
buyer-item cross-reference, a profile's update."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from api.schemas import Body, ProfileBody, Sku, View

BuyerItem = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]


class ItemRefBody(Body, kw_only=True):
    buyer_item: BuyerItem
    sku: Sku


class ItemRefsBody(Body, kw_only=True):
    items: Annotated[list[ItemRefBody], Meta(min_length=1, max_length=5000)]


class ItemRefView(View, kw_only=True):
    buyer_item: str
    sku: str


class ItemRefList(View, kw_only=True):
    items: list[ItemRefView]


class PutProfileBody(ProfileBody, kw_only=True):
    """The whole profile (its channel cannot change)."""


class EdiDocumentView(View, kw_only=True):
    id: str
    kind: str
    #: ready | sent | blocked (the reason says why) | skipped (the partner does not take it)
    status: str
    customer_id: str | None = None
    order_id: str | None = None
    shipment_id: str | None = None
    po_number: str | None = None
    partner: str | None = None
    interchange_control: int | None = None
    group_control: int | None = None
    transaction_set_controls: list[int] = []
    reason: str | None = None
    filename: str | None = None
    created_at: str
    sent_at: str | None = None


class EdiDocumentList(View, kw_only=True):
    items: list[EdiDocumentView]
    total: int


class InvoiceLineView(View, kw_only=True):
    sku: str
    quantity: int
    unit_price: str | None = None
    amount: str | None = None


class InvoiceView(View, kw_only=True):
    id: str
    number: int
    order_id: str
    shipment_id: str
    customer_id: str | None = None
    po_number: str | None = None
    payment_terms: str | None = None
    currency: str
    invoice_date: str
    due_date: str
    #: open (not yet due) | overdue (due date passed)
    status: str
    total: str
    lines: list[InvoiceLineView]


class InvoiceList(View, kw_only=True):
    items: list[InvoiceView]
    total: int
