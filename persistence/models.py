"""PostgreSQL, the system of record: what the outbox worker writes and what a
rebuild of Redis reads. SQLAlchemy 2 declarative models; the schema itself is
created by the Alembic migrations in persistence/migrations.

Every row written from an outbox event is written idempotently: snapshots
(SKUs, orders, records) carry a version and only a newer version replaces an
older one; facts (ledger movements, shipments, returns, receipts) have the
event's id in their key. So applying an event twice changes nothing and the
result does not depend on the order in which batches commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Sku(Base):
    """A SKU's details and its counters as of ``version`` (the Redis version)."""

    __tablename__ = "skus"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    upc: Mapped[str | None] = mapped_column(String(64))
    case_pack: Mapped[int | None] = mapped_column(Integer)
    shopify_inventory_item_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    dtc_reserve: Mapped[int] = mapped_column(BigInteger, default=0)
    on_hand: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_dtc: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_wholesale: Mapped[int] = mapped_column(BigInteger, default=0)
    backordered_dtc: Mapped[int] = mapped_column(BigInteger, default=0)
    backordered_wholesale: Mapped[int] = mapped_column(BigInteger, default=0)
    exception: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LedgerEntry(Base):
    """One inventory movement: counter deltas, why, who, and which operation."""

    __tablename__ = "inventory_ledger"
    __table_args__ = (UniqueConstraint("event_id", "idx"), Index("ix_ledger_sku_at", "sku", "at"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))
    idx: Mapped[int] = mapped_column(Integer)
    op_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))  # the event type
    sku: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    d_on_hand: Mapped[int] = mapped_column(BigInteger)
    d_reserved_dtc: Mapped[int] = mapped_column(BigInteger)
    d_reserved_wholesale: Mapped[int] = mapped_column(BigInteger)
    d_backordered_dtc: Mapped[int] = mapped_column(BigInteger)
    d_backordered_wholesale: Mapped[int] = mapped_column(BigInteger)
    d_exception: Mapped[int] = mapped_column(BigInteger)
    units: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Order(Base):
    """An order's header and status as of ``version``; its lines are OrderLine."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_po_lower", func.lower(text("po_number"))),
        Index("ix_orders_seq", "seq"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)  # acceptance sequence = number
    channel: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    backorder_policy: Mapped[str] = mapped_column(String(24))
    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    profile_id: Mapped[str | None] = mapped_column(String(64))
    po_number: Mapped[str | None] = mapped_column(String(128))
    shopify_order_id: Mapped[str | None] = mapped_column(String(32), index=True)
    header: Mapped[dict] = mapped_column(JSONB)
    shipments: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    returns: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderLine(Base):
    """A line's counters as of its order's version."""

    __tablename__ = "order_lines"
    __table_args__ = (Index("ix_order_lines_sku", "sku"),)

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str | None] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(BigInteger)
    reserved: Mapped[int] = mapped_column(BigInteger)
    backordered: Mapped[int] = mapped_column(BigInteger)
    exception: Mapped[int] = mapped_column(BigInteger)
    shipped: Mapped[int] = mapped_column(BigInteger)
    cancelled: Mapped[int] = mapped_column(BigInteger)
    returned: Mapped[int] = mapped_column(BigInteger)
    exception_reason: Mapped[str | None] = mapped_column(String(32))
    pooled: Mapped[bool] = mapped_column(Boolean)


class Shipment(Base):
    __tablename__ = "shipments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(32))
    method: Mapped[str | None] = mapped_column(String(16))
    carrier: Mapped[str | None] = mapped_column(String(128))
    service: Mapped[str | None] = mapped_column(String(128))
    tracking_number: Mapped[str | None] = mapped_column(String(128), index=True)
    tracking_url: Mapped[str | None] = mapped_column(Text)
    lines: Mapped[list] = mapped_column(JSONB)
    doc: Mapped[dict] = mapped_column(JSONB)
    #: indexed for the Shopify fulfillment push, which looks at recent shipments
    shipped_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Return(Base):
    __tablename__ = "returns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    lines: Mapped[list] = mapped_column(JSONB)
    returned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Receipt(Base):
    __tablename__ = "receipts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reference: Mapped[str | None] = mapped_column(String(128), unique=True)
    event_id: Mapped[str] = mapped_column(String(32))
    lines: Mapped[list] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Customer(Base):
    """A customer record as the API wrote it (``doc``, with its profiles), and
    the columns searched by name, email and phone."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    email: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(64))
    doc: Mapped[dict] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CustomerProfile(Base):
    """One of a customer's profiles (channel, terms, policy); from the doc."""

    __tablename__ = "customer_profiles"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    payment_terms: Mapped[str | None] = mapped_column(String(16))
    backorder_policy: Mapped[str | None] = mapped_column(String(24))
    shopify_customer_id: Mapped[str | None] = mapped_column(String(32), index=True)


class ApiKey(Base):
    """An API key: role, owner and the hash of its secret (never the secret).
    ``doc`` is None once revoked."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str | None] = mapped_column(String(16))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    key_hash: Mapped[str | None] = mapped_column(String(128))
    doc: Mapped[dict | None] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Reservation(Base):
    """Open units of order lines per SKU (a view over order_lines): what a
    rebuild restores into the per-SKU reservation and waiting queues."""

    __tablename__ = "reservations"
    __table_args__ = {"info": {"is_view": True}}

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(BigInteger)
    reserved: Mapped[int] = mapped_column(BigInteger)
    backordered: Mapped[int] = mapped_column(BigInteger)
    exception: Mapped[int] = mapped_column(BigInteger)


RESERVATIONS_VIEW = """
CREATE VIEW reservations AS
SELECT l.order_id, l.idx, l.sku, o.channel, o.seq, l.reserved, l.backordered, l.exception
FROM order_lines l JOIN orders o ON o.id = l.order_id
WHERE l.pooled AND (l.reserved + l.backordered + l.exception) > 0
"""


class IdempotencyRecord(Base):
    """A stored outcome of an operation id, kept until ``expires_at``."""

    __tablename__ = "idempotency_records"

    op_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
    result: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class WebhookReceipt(Base):
    """A Shopify delivery that was handled (dedupe survives a Redis rebuild)."""

    __tablename__ = "webhook_receipts"

    dedupe_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str | None] = mapped_column(String(64))
    webhook_id: Mapped[str | None] = mapped_column(String(64))
    shopify_order_id: Mapped[str | None] = mapped_column(String(32))
    result: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AppliedEvent(Base):
    """Outbox entries already written here: the worker's idempotency key."""

    __tablename__ = "applied_events"

    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    op_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DeadLetter(Base):
    """An outbox entry that kept failing; kept until someone acts."""

    __tablename__ = "dead_letters"

    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class State(Base):
    """Small facts about the store as a whole (e.g. the highest sequence)."""

    __tablename__ = "state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ShopifyPending(Base):
    """A Shopify cancel or refund for an order not seen yet: kept (in Redis and
    here, for a rebuild) and applied when the order's orders/create arrives."""

    __tablename__ = "shopify_pending"

    #: The delivery's first dedupe key (unique per delivery).
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    shopify_order_id: Mapped[str] = mapped_column(String(32), index=True)
    topic: Mapped[str] = mapped_column(String(64))
    action: Mapped[dict] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ShopifyFulfillment(Base):
    """The push of one shipment of a Shopify order as Shopify fulfillments."""

    __tablename__ = "shopify_fulfillments"

    shipment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    shopify_order_id: Mapped[str] = mapped_column(String(32))
    #: "pushed" | "failed" (given up: refused by Shopify or too many attempts)
    #: | "skipped" (nothing Shopify can fulfil) | "retry" (will try again)
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: Shopify's fulfillment ids (gids) created for the shipment.
    fulfillment_ids: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ShopifySyncState(Base):
    """The available sync's count for one SKU (P:sy:<sku> in Redis), kept so a
    rebuilt Redis goes on from it instead of pushing the SKU for the first time.

    ``balance`` is owed + pushed - seen: Shopify's quantity plus what Shopify
    has sold (net of restocks) that onhand had not heard of. Every outbox
    event that moves it carries its own change (``dx``) and the state's
    ``lineage`` (a first push or a rebase starts a new one, its first change
    being the whole balance): the newest lineage is kept and its changes are
    summed, so events may be applied in any order and an event lost with
    Redis takes exactly its own change (and its own orders) with it.
    ``pushed`` and the settle are those of the newest commit (``gen``)."""

    __tablename__ = "shopify_sync_state"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    lineage: Mapped[int] = mapped_column(BigInteger)
    balance: Mapped[int] = mapped_column(BigInteger)
    #: Shopify's quantity after onhand's newest write (None: no commit of
    #: this lineage applied yet; such a row is not restored).
    pushed: Mapped[int | None] = mapped_column(BigInteger)
    #: Commits so far: the version of ``pushed`` and the settle.
    gen: Mapped[int] = mapped_column(BigInteger)
    #: While the SKU settles after its first push (workers/shopify_sync.py):
    #: {u: window end (ms), q: quiet, s: began (ms), g: gap held back,
    #: m: Shopify's updatedAt as the window began}.
    settle: Mapped[dict | None] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ShopifySyncWal(Base):
    """A write the sync is about to send to Shopify (its write-ahead record,
    P:sync:wal in Redis): written before the write, removed when the event of
    its commit (or of its refusal) is applied. A rebuild puts those left back
    into Redis and the sync replays them with their idempotency key, so a
    write whose commit was lost with Redis is still counted."""

    __tablename__ = "shopify_sync_wal"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: {input, entries, at}: what workers/shopify_sync.py replays.
    record: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# ---------------------------------------------------------------- documents (issue 12)
# Wholesale documents: counters that never go back, the outgoing EDI
# documents, cartons with their SSCCs, invoices, and the buyer-item
# cross-reference. Every row carries its merchant.

from datetime import date  # noqa: E402
from decimal import Decimal  # noqa: E402

from sqlalchemy import Date, Numeric  # noqa: E402


class EdiCounter(Base):
    """A number that never goes back: interchange, group and transaction set
    control numbers, invoice numbers. Taken with UPDATE ... RETURNING in the
    transaction that records what uses the number."""

    __tablename__ = "edi_counters"

    merchant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class EdiItemRef(Base):
    """The buyer's item number (BP, IN, CB, SK) -> our SKU, per customer."""

    __tablename__ = "edi_item_refs"

    merchant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    buyer_item: Mapped[str] = mapped_column(String(128), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EdiDocument(Base):
    """An outgoing EDI document (997, 855, 856, 810): its control numbers,
    its bytes, when it was written to the outbox folder (sent), or why it is
    blocked. ``dedupe_key`` makes each document once (e.g. 856:<shipment>)."""

    __tablename__ = "edi_documents"
    __table_args__ = (
        UniqueConstraint("merchant_id", "dedupe_key"),
        Index("ux_edi_documents_isa", "merchant_id", "isa_control", unique=True,
              postgresql_where=text("isa_control IS NOT NULL")),
        Index("ix_edi_documents_order", "merchant_id", "order_id"),
        Index("ix_edi_documents_unsent", "merchant_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    #: "ready" (recorded, not yet in the outbox folder) | "sent" | "blocked"
    status: Mapped[str] = mapped_column(String(16))
    dedupe_key: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(64))
    shipment_id: Mapped[str | None] = mapped_column(String(64))
    po_number: Mapped[str | None] = mapped_column(String(128))
    #: The partner's ISA qualifier and id ("ZZ:ACME").
    partner: Mapped[str | None] = mapped_column(String(32))
    isa_control: Mapped[int | None] = mapped_column(BigInteger)
    gs_control: Mapped[int | None] = mapped_column(BigInteger)
    st_controls: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    reason: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(String(255))
    content: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ShipmentCarton(Base):
    """A carton or pallet of a shipment with its SSCC (from the shipment's
    outbox event); a rebuild restores the SSCC serial counter above these."""

    __tablename__ = "shipment_cartons"
    __table_args__ = (
        Index("ix_shipment_cartons_shipment", "merchant_id", "shipment_id"),
        # an SSCC is never given twice: a reused serial would fail here loudly
        Index("ux_shipment_cartons_sscc", "merchant_id", "sscc", unique=True,
              postgresql_where=text("sscc IS NOT NULL")),
    )

    merchant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shipment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: "carton" | "pallet"
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    sscc: Mapped[str | None] = mapped_column(String(18))
    serial: Mapped[int | None] = mapped_column(BigInteger)
    lines: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Invoice(Base):
    """One invoice per shipment of a wholesale order, with its due date from
    the order's payment terms."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("merchant_id", "number"),
        UniqueConstraint("merchant_id", "shipment_id"),
        Index("ix_invoices_customer_due", "merchant_id", "customer_id", "due_date"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[int] = mapped_column(BigInteger)
    shipment_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    po_number: Mapped[str | None] = mapped_column(String(128))
    payment_terms: Mapped[str | None] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    invoice_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    lines: Mapped[list] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
