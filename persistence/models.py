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
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def merchant_column() -> Mapped[str]:
    """The merchant a row belongs to: the first column of every key, so one
    merchant's rows never meet another's (ids the merchant chooses - SKUs,
    receipt references, outbox entry ids - repeat across merchants)."""
    return mapped_column(String(64), primary_key=True)


class Merchant(Base):
    """A merchant (tenant) of this deployment; its Redis keys live under
    ``{m:<id>}`` (engine/keys.py). The home merchant (ONHAND_MERCHANT,
    "default") exists without a row; others are made by ``onhand merchants
    create``."""

    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    #: Its Shopify shop domain (each shop belongs to one merchant).
    shopify_shop: Mapped[str | None] = mapped_column(String(255), unique=True)
    #: Its Shopify channel's settings: access token, API secret(s), location, API URL.
    shopify: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Sku(Base):
    """A SKU's details and its counters as of ``version`` (the Redis version)."""

    __tablename__ = "skus"
    #: the staff UI's SKU search: a prefix of the SKU, the UPC or the name, any case
    __table_args__ = (
        Index("ix_skus_sku_prefix", "merchant_id", func.lower(text("sku")),
              postgresql_ops={"lower(sku)": "text_pattern_ops"}),
        Index("ix_skus_name_prefix", "merchant_id", func.lower(text("name")),
              postgresql_ops={"lower(name)": "text_pattern_ops"}),
        Index("ix_skus_upc_prefix", "merchant_id", "upc", postgresql_ops={"upc": "text_pattern_ops"}),
    )

    merchant_id: Mapped[str] = merchant_column()
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
    __table_args__ = (UniqueConstraint("merchant_id", "event_id", "idx", name="inventory_ledger_merchant_event_idx_key"),
                      Index("ix_ledger_sku_at", "merchant_id", "sku", "at"),
                      Index("ix_inventory_ledger_at", "merchant_id", "at"),
                      Index("ix_inventory_ledger_order_id", "merchant_id", "order_id"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(32))
    idx: Mapped[int] = mapped_column(Integer)
    op_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))  # the event type
    sku: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(64))
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
        Index("ix_orders_po_lower", "merchant_id", func.lower(text("po_number"))),
        UniqueConstraint("merchant_id", "seq", name="orders_merchant_seq_key"),
        Index("ix_orders_customer_id", "merchant_id", "customer_id"),
        Index("ix_orders_shopify_order_id", "merchant_id", "shopify_order_id"),
        #: lists filtered by status (and channel), newest first, a page at a time
        Index("ix_orders_status_channel_seq", "merchant_id", "status", "channel", "seq"),
    )

    merchant_id: Mapped[str] = merchant_column()
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)  # acceptance sequence = number
    channel: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    backorder_policy: Mapped[str] = mapped_column(String(24))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    profile_id: Mapped[str | None] = mapped_column(String(64))
    po_number: Mapped[str | None] = mapped_column(String(128))
    shopify_order_id: Mapped[str | None] = mapped_column(String(32))
    header: Mapped[dict] = mapped_column(JSONB)
    shipments: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    returns: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderLine(Base):
    """A line's counters as of its order's version."""

    __tablename__ = "order_lines"
    __table_args__ = (ForeignKeyConstraint(["merchant_id", "order_id"], ["orders.merchant_id", "orders.id"],
                                           ondelete="CASCADE", name="order_lines_order_fkey"),
                      Index("ix_order_lines_sku", "merchant_id", "sku"),
                      Index("ix_order_lines_backordered", "merchant_id", "order_id",
                            postgresql_where=text("backordered > 0")))

    merchant_id: Mapped[str] = merchant_column()
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
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
    __table_args__ = (Index("ix_shipments_order_id", "merchant_id", "order_id"),
                      Index("ix_shipments_tracking_number", "merchant_id", "tracking_number"),
                      Index("ix_shipments_shipped_at", "merchant_id", "shipped_at"),
                      #: the staff UI's order search by tracking number, any case
                      Index("ix_shipments_tracking_lower", "merchant_id", func.lower(text("tracking_number"))))

    merchant_id: Mapped[str] = merchant_column()
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(32))
    method: Mapped[str | None] = mapped_column(String(16))
    carrier: Mapped[str | None] = mapped_column(String(128))
    service: Mapped[str | None] = mapped_column(String(128))
    tracking_number: Mapped[str | None] = mapped_column(String(128))
    tracking_url: Mapped[str | None] = mapped_column(Text)
    lines: Mapped[list] = mapped_column(JSONB)
    doc: Mapped[dict] = mapped_column(JSONB)
    #: indexed for the Shopify fulfillment push, which looks at recent shipments
    shipped_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Return(Base):
    __tablename__ = "returns"
    __table_args__ = (Index("ix_returns_order_id", "merchant_id", "order_id"),)

    merchant_id: Mapped[str] = merchant_column()
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    lines: Mapped[list] = mapped_column(JSONB)
    returned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Receipt(Base):
    __tablename__ = "receipts"
    __table_args__ = (UniqueConstraint("merchant_id", "reference", name="receipts_merchant_reference_key"),)

    merchant_id: Mapped[str] = merchant_column()
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reference: Mapped[str | None] = mapped_column(String(128))
    event_id: Mapped[str] = mapped_column(String(32))
    lines: Mapped[list] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Customer(Base):
    """A customer record as the API wrote it (``doc``, with its profiles), and
    the columns searched by name, email and phone."""

    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_name", "merchant_id", "name"),
                      # partners are found by their EDI identity inside the profiles
                      Index("ix_customers_doc", "doc", postgresql_using="gin",
                            postgresql_ops={"doc": "jsonb_path_ops"}))

    merchant_id: Mapped[str] = merchant_column()
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(64))
    doc: Mapped[dict] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CustomerProfile(Base):
    """One of a customer's profiles (channel, terms, policy); from the doc."""

    __tablename__ = "customer_profiles"
    __table_args__ = (ForeignKeyConstraint(["merchant_id", "customer_id"], ["customers.merchant_id", "customers.id"],
                                           ondelete="CASCADE", name="customer_profiles_customer_fkey"),
                      Index("ix_customer_profiles_customer_id", "merchant_id", "customer_id"),
                      Index("ix_customer_profiles_shopify_customer_id", "merchant_id", "shopify_customer_id"))

    merchant_id: Mapped[str] = merchant_column()
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    payment_terms: Mapped[str | None] = mapped_column(String(16))
    backorder_policy: Mapped[str | None] = mapped_column(String(24))
    shopify_customer_id: Mapped[str | None] = mapped_column(String(32))


class ApiKey(Base):
    """An API key: role, owner and the hash of its secret (never the secret).
    ``doc`` is None once revoked."""

    __tablename__ = "api_keys"

    merchant_id: Mapped[str] = merchant_column()
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str | None] = mapped_column(String(16))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    key_hash: Mapped[str | None] = mapped_column(String(128))
    doc: Mapped[dict | None] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class User(Base):
    """A staff user of the web UI (ui/users.py): role and the argon2 hash of
    the password (never the password). ``doc`` is the record as Redis holds it."""

    __tablename__ = "users"

    merchant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    doc: Mapped[dict] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("merchant_id", "email", name="uq_users_merchant_email"),)


class Reservation(Base):
    """Open units of order lines per SKU (a view over order_lines): what a
    rebuild restores into the per-SKU reservation and waiting queues."""

    __tablename__ = "reservations"
    __table_args__ = {"info": {"is_view": True}}

    merchant_id: Mapped[str] = merchant_column()
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
SELECT l.merchant_id, l.order_id, l.idx, l.sku, o.channel, o.seq, l.reserved, l.backordered, l.exception
FROM order_lines l JOIN orders o ON o.merchant_id = l.merchant_id AND o.id = l.order_id
WHERE l.pooled AND (l.reserved + l.backordered + l.exception) > 0
"""


class IdempotencyRecord(Base):
    """A stored outcome of an operation id, kept until ``expires_at``."""

    __tablename__ = "idempotency_records"

    merchant_id: Mapped[str] = merchant_column()
    op_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
    #: "" while only continuation fills of it have arrived (batches apply in any order)
    result: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    #: Fills the continuation calls added to it (a JSON array), and how many.
    extra_fills: Mapped[str | None] = mapped_column(Text)
    extra_n: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class WebhookReceipt(Base):
    """A Shopify delivery that was handled (dedupe survives a Redis rebuild)."""

    __tablename__ = "webhook_receipts"

    merchant_id: Mapped[str] = merchant_column()
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

    merchant_id: Mapped[str] = merchant_column()
    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    op_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DeadLetter(Base):
    """An outbox entry that kept failing; kept until someone acts."""

    __tablename__ = "dead_letters"

    merchant_id: Mapped[str] = merchant_column()
    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: "replayed" (applied after all) or "discarded" (resolved by hand).
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)


class State(Base):
    """Small facts about the store as a whole (e.g. the highest sequence)."""

    __tablename__ = "state"

    merchant_id: Mapped[str] = merchant_column()
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ShopifyPending(Base):
    """A Shopify cancel or refund for an order not seen yet: kept (in Redis and
    here, for a rebuild) and applied when the order's orders/create arrives."""

    __tablename__ = "shopify_pending"
    __table_args__ = (Index("ix_shopify_pending_shopify_order_id", "merchant_id", "shopify_order_id"),)

    #: The delivery's first dedupe key (unique per delivery).
    merchant_id: Mapped[str] = merchant_column()
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    shopify_order_id: Mapped[str] = mapped_column(String(32))
    topic: Mapped[str] = mapped_column(String(64))
    action: Mapped[dict] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ShopifyFulfillment(Base):
    """The push of one shipment of a Shopify order as Shopify fulfillments."""

    __tablename__ = "shopify_fulfillments"
    __table_args__ = (Index("ix_shopify_fulfillments_order_id", "merchant_id", "order_id"),
                      Index("ix_shopify_fulfillments_status", "merchant_id", "status"))

    merchant_id: Mapped[str] = merchant_column()
    shipment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    shopify_order_id: Mapped[str] = mapped_column(String(32))
    #: "pushed" | "failed" (given up: refused by Shopify or too many attempts)
    #: | "skipped" (nothing Shopify can fulfil) | "retry" (will try again)
    status: Mapped[str] = mapped_column(String(16))
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

    merchant_id: Mapped[str] = merchant_column()
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    lineage: Mapped[int] = mapped_column(BigInteger)
    balance: Mapped[int] = mapped_column(BigInteger)
    #: Shopify's quantity after onhand's newest write (None: no commit of
    #: this lineage applied yet; such a row is not restored).
    pushed: Mapped[int | None] = mapped_column(BigInteger)
    #: When ``pushed`` was committed (the staff UI shows its age; P:sy pt).
    pushed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
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

    merchant_id: Mapped[str] = merchant_column()
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
# ---------------------------------------------------------------- notifications
# Outbound webhooks and emails (docs/notifications.md). Every table carries
# merchant_id; events are written by the outbox apply (persistence/
# notifications.py), deliveries claimed by the workers (workers/webhooks.py,
# workers/mailer.py) with FOR UPDATE SKIP LOCKED.


class NotificationEvent(Base):
    """A customer-facing event (order.created, order.shipped, ...), derived
    from one outbox entry in the transaction that applied it. Its position
    (entry_ms, entry_seq, rank) orders the events of one order."""

    __tablename__ = "notification_events"
    __table_args__ = (
        Index("ix_notification_events_at", "merchant_id", "occurred_at"),
        Index("ix_notification_events_customer_at", "merchant_id", "customer_id", "occurred_at"),
        Index("ix_notification_events_order", "merchant_id", "order_id"),
    )

    merchant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    profile_id: Mapped[str | None] = mapped_column(String(64))
    po_number: Mapped[str | None] = mapped_column(String(128))
    #: The outbox entry id of the change ("<ms>-<seq>").
    entry_id: Mapped[str] = mapped_column(String(32))
    entry_ms: Mapped[int] = mapped_column(BigInteger)
    entry_seq: Mapped[int] = mapped_column(BigInteger)
    rank: Mapped[int] = mapped_column(SmallInteger)
    payload: Mapped[dict] = mapped_column(JSONB)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookEndpoint(Base):
    """A URL that receives a customer's (or, with no customer, every) event of
    the chosen types. ``secret`` signs the deliveries (Standard Webhooks); it
    must be usable for HMAC, so unlike API keys it is stored as issued."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_scope", "merchant_id", "customer_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    #: None: a merchant-wide endpoint (admin keys only): every event of the merchant.
    customer_id: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    description: Mapped[str | None] = mapped_column(String(255))
    secret: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean)
    #: Why it was disabled ("dead_letter" after the retry window, "api").
    disabled_reason: Mapped[str | None] = mapped_column(String(32))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Attempts that failed in a row (0 when the last one succeeded): while
    #: above 0 the endpoint is probed one delivery at a time.
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: After a failed attempt nothing is claimed for the endpoint until then
    #: (exponential backoff per endpoint: a dead endpoint's backlog is not
    #: tried delivery by delivery).
    paused_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One event for one endpoint: the delivery log's row and the queue's
    entry. ``pending`` until delivered (2xx) or dead (retry window over).
    The event's order and position are copied here so the claim can keep an
    order's events in order per endpoint."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_due", "endpoint_id", "next_attempt_at", "id",
              postgresql_where=text("status = 'pending'")),
        Index("ix_webhook_deliveries_claimed", "endpoint_id", "claimed_until",
              postgresql_where=text("status = 'pending' AND claimed_by IS NOT NULL")),
        Index("ix_webhook_deliveries_order", "endpoint_id", "order_id", "entry_ms", "entry_seq", "rank",
              postgresql_where=text("status = 'pending'")),
        Index("ix_webhook_deliveries_log", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str | None] = mapped_column(String(64))
    entry_ms: Mapped[int] = mapped_column(BigInteger)
    entry_seq: Mapped[int] = mapped_column(BigInteger)
    rank: Mapped[int] = mapped_column(SmallInteger)
    #: pending | delivered | dead
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Start of the retry window (creation, a replay, or the endpoint re-enabled).
    retry_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_latency_ms: Mapped[int | None] = mapped_column(Integer)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replays: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookDeadLetter(Base):
    """A delivery that failed through its whole retry window; its endpoint was
    disabled. Kept (also after the endpoint is deleted) until someone acts."""

    __tablename__ = "webhook_dead_letters"
    __table_args__ = (Index("ix_webhook_dead_letters_endpoint", "merchant_id", "endpoint_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    endpoint_id: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EmailDelivery(Base):
    """One email for one event (order confirmation, shipment notice, backorder
    filled) to the order's profile contact. Written by the apply for orders
    whose profile opted in; the mailer checks the opt-in again when it sends
    (``skipped`` if withdrawn). Sending twice after a crash is possible; the
    Message-ID, derived from the event id, lets receivers drop the copy."""

    __tablename__ = "email_deliveries"
    __table_args__ = (
        UniqueConstraint("merchant_id", "event_id"),
        Index("ix_email_deliveries_due", "merchant_id", "next_attempt_at",
              postgresql_where=text("status = 'pending'")),
        Index("ix_email_deliveries_order", "merchant_id", "order_id", "entry_ms", "entry_seq", "rank",
              postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(40))
    #: order_confirmation | shipment_notice | backorder_filled
    kind: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    profile_id: Mapped[str | None] = mapped_column(String(64))
    entry_ms: Mapped[int] = mapped_column(BigInteger)
    entry_seq: Mapped[int] = mapped_column(BigInteger)
    rank: Mapped[int] = mapped_column(SmallInteger)
    #: pending | sent | skipped | failed
    status: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str | None] = mapped_column(String(255))
    message_id: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retry_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HttpIdempotency(Base):
    """Idempotency-Key outcomes of routes whose state lives in PostgreSQL only
    (webhook endpoints): written in the transaction of the change."""

    __tablename__ = "http_idempotency"

    merchant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    op_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
