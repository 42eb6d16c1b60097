"""The baseline engine's tables and statements (loadtests/baseline.py).

One row per SKU in bl_stock, orders and their lines in bl_orders and
bl_order_lines, idempotency records, Shopify dedupe records and receipt
references in their own tables: the shape of Saleor's Stock/Allocation and
Medusa's inventory levels and reservations, reduced to what the benchmark
exercises.
"""

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS bl_seq;
CREATE TABLE IF NOT EXISTS bl_stock (
    sku text PRIMARY KEY,
    on_hand bigint NOT NULL DEFAULT 0,
    reserved_dtc bigint NOT NULL DEFAULT 0,
    reserved_wholesale bigint NOT NULL DEFAULT 0,
    backordered_dtc bigint NOT NULL DEFAULT 0,
    backordered_wholesale bigint NOT NULL DEFAULT 0,
    exception bigint NOT NULL DEFAULT 0,
    dtc_reserve bigint NOT NULL DEFAULT 0,
    version bigint NOT NULL DEFAULT 0,
    details text NOT NULL DEFAULT '{}',
    CHECK (on_hand - reserved_dtc - reserved_wholesale >= 0)
);
CREATE TABLE IF NOT EXISTS bl_orders (
    id text PRIMARY KEY,
    seq bigint NOT NULL UNIQUE,
    channel text NOT NULL,
    policy text NOT NULL,
    doc text NOT NULL,
    version bigint NOT NULL,
    updated_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS bl_order_lines (
    order_id text NOT NULL REFERENCES bl_orders (id),
    idx int NOT NULL,
    sku text NOT NULL,
    quantity bigint NOT NULL,
    reserved bigint NOT NULL,
    backordered bigint NOT NULL,
    exception bigint NOT NULL,
    shipped bigint NOT NULL DEFAULT 0,
    cancelled bigint NOT NULL,
    returned bigint NOT NULL DEFAULT 0,
    why text NOT NULL DEFAULT '',
    pooled boolean NOT NULL,
    PRIMARY KEY (order_id, idx)
);
CREATE INDEX IF NOT EXISTS bl_waiting ON bl_order_lines (sku)
    WHERE pooled AND backordered + exception > 0;
CREATE TABLE IF NOT EXISTS bl_idempotency (
    op_id text PRIMARY KEY,
    fingerprint text NOT NULL,
    result text,
    in_flight_until_ms bigint NOT NULL,
    expires_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS bl_webhook_records (
    key text PRIMARY KEY,
    order_id text,
    expires_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS bl_receipts (
    id text PRIMARY KEY,
    reference text UNIQUE,
    body text NOT NULL
);
"""

COLS = "sku, on_hand, reserved_dtc, reserved_wholesale, backordered_dtc, " \
        "backordered_wholesale, exception, dtc_reserve, version, details"
LOCK = f"SELECT {COLS} FROM bl_stock WHERE sku = ANY(%s) ORDER BY sku FOR UPDATE"
WRITE_STOCK = """
UPDATE bl_stock s SET on_hand = d.oh, reserved_dtc = d.rd, reserved_wholesale = d.rw,
    backordered_dtc = d.bd, backordered_wholesale = d.bw, exception = d.ex,
    dtc_reserve = d.fence, version = d.v, details = d.m
FROM unnest(%(s_sku)s::text[], %(s_oh)s::bigint[], %(s_rd)s::bigint[], %(s_rw)s::bigint[],
            %(s_bd)s::bigint[], %(s_bw)s::bigint[], %(s_ex)s::bigint[], %(s_fence)s::bigint[],
            %(s_v)s::bigint[], %(s_m)s::text[])
     AS d(sku, oh, rd, rw, bd, bw, ex, fence, v, m)
WHERE s.sku = d.sku
"""
#: The order, its lines and the new counters in one statement (one round
#: trip while the row locks are held); answers the order's number.
WRITE_ORDER = f"""
WITH o AS (
    INSERT INTO bl_orders (id, seq, channel, policy, doc, version, updated_ms)
    VALUES (%(id)s, nextval('bl_seq'), %(channel)s, %(policy)s, %(doc)s, 1, %(now)s)
    RETURNING seq
), l AS (
    INSERT INTO bl_order_lines (order_id, idx, sku, quantity, reserved, backordered, exception,
                                cancelled, why, pooled)
    SELECT %(id)s, * FROM unnest(%(idx)s::int[], %(sku)s::text[], %(qty)s::bigint[],
        %(res)s::bigint[], %(bo)s::bigint[], %(exc)s::bigint[], %(canc)s::bigint[],
        %(why)s::text[], %(pooled)s::boolean[])
), s AS ({WRITE_STOCK})
SELECT seq FROM o
"""
STORE_OUTCOME = """
INSERT INTO bl_idempotency (op_id, fingerprint, result, in_flight_until_ms, expires_ms)
VALUES (%s, %s, %s, 0, %s)
ON CONFLICT (op_id) DO UPDATE SET fingerprint = excluded.fingerprint, result = excluded.result,
    in_flight_until_ms = 0, expires_ms = excluded.expires_ms
"""
