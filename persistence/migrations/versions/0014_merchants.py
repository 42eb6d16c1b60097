"""merchants: every row belongs to one merchant (tenant)

Adds the merchants table and a merchant_id column to every table, first in
every key (ids a merchant chooses - SKUs, receipt references, outbox entry
ids - repeat across merchants) and in the indexes reads use. Existing rows
belong to the deployment's merchant: ONHAND_MERCHANT when the migration runs
(``default`` unless set), passed in by persistence.db.migrate.

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0014'
down_revision = '0010'
branch_labels = None
depends_on = None

#: table -> its key after the merchant (the old primary key's columns)
KEYS = {
    'skus': ['sku'], 'orders': ['id'], 'order_lines': ['order_id', 'idx'], 'shipments': ['id'],
    'returns': ['id'], 'receipts': ['id'], 'customers': ['id'], 'customer_profiles': ['id'],
    'api_keys': ['id'], 'idempotency_records': ['op_id'], 'webhook_receipts': ['dedupe_key'],
    'applied_events': ['event_id'], 'dead_letters': ['event_id'], 'state': ['key'],
    'shopify_pending': ['key'], 'shopify_fulfillments': ['shipment_id'], 'shopify_sync_state': ['sku'],
    'shopify_sync_wal': ['key'],
}
#: index -> (table, columns after the merchant) for the indexes reads use
INDEXES = {
    'ix_ledger_sku_at': ('inventory_ledger', ['sku', 'at']),
    'ix_inventory_ledger_at': ('inventory_ledger', ['at']),
    'ix_inventory_ledger_order_id': ('inventory_ledger', ['order_id']),
    'ix_orders_customer_id': ('orders', ['customer_id']),
    'ix_orders_shopify_order_id': ('orders', ['shopify_order_id']),
    'ix_order_lines_sku': ('order_lines', ['sku']),
    'ix_shipments_order_id': ('shipments', ['order_id']),
    'ix_shipments_tracking_number': ('shipments', ['tracking_number']),
    'ix_shipments_shipped_at': ('shipments', ['shipped_at']),
    'ix_returns_order_id': ('returns', ['order_id']),
    'ix_customers_name': ('customers', ['name']),
    'ix_customer_profiles_customer_id': ('customer_profiles', ['customer_id']),
    'ix_customer_profiles_shopify_customer_id': ('customer_profiles', ['shopify_customer_id']),
    'ix_shopify_pending_shopify_order_id': ('shopify_pending', ['shopify_order_id']),
    'ix_shopify_fulfillments_order_id': ('shopify_fulfillments', ['order_id']),
    'ix_shopify_fulfillments_status': ('shopify_fulfillments', ['status']),
}
VIEW = """
CREATE VIEW reservations AS
SELECT l.merchant_id, l.order_id, l.idx, l.sku, o.channel, o.seq, l.reserved, l.backordered, l.exception
FROM order_lines l JOIN orders o ON o.merchant_id = l.merchant_id AND o.id = l.order_id
WHERE l.pooled AND (l.reserved + l.backordered + l.exception) > 0
"""
OLD_VIEW = """
CREATE VIEW reservations AS
SELECT l.order_id, l.idx, l.sku, o.channel, o.seq, l.reserved, l.backordered, l.exception
FROM order_lines l JOIN orders o ON o.id = l.order_id
WHERE l.pooled AND (l.reserved + l.backordered + l.exception) > 0
"""


def _home() -> str:
    return op.get_context().config.attributes.get("merchant") or "default"


def upgrade() -> None:
    op.create_table(
        'merchants',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('shopify_shop', sa.String(length=255), nullable=True),
        sa.Column('shopify', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('shopify_shop'),
    )
    op.execute("DROP VIEW reservations")
    op.drop_constraint('order_lines_order_id_fkey', 'order_lines', type_='foreignkey')
    op.drop_constraint('customer_profiles_customer_id_fkey', 'customer_profiles', type_='foreignkey')
    home = _home()
    for table in [*KEYS, 'inventory_ledger']:
        op.add_column(table, sa.Column('merchant_id', sa.String(length=64), nullable=False,
                                       server_default=home))
        op.alter_column(table, 'merchant_id', server_default=None)
    for table, columns in KEYS.items():
        op.drop_constraint(f'{table}_pkey', table, type_='primary')
        op.create_primary_key(f'{table}_pkey', table, ['merchant_id', *columns])
    op.drop_constraint('orders_seq_key', 'orders', type_='unique')
    op.drop_index('ix_orders_seq', table_name='orders')
    op.create_unique_constraint('orders_merchant_seq_key', 'orders', ['merchant_id', 'seq'])
    op.drop_constraint('receipts_reference_key', 'receipts', type_='unique')
    op.create_unique_constraint('receipts_merchant_reference_key', 'receipts', ['merchant_id', 'reference'])
    op.drop_constraint('inventory_ledger_event_id_idx_key', 'inventory_ledger', type_='unique')
    op.create_unique_constraint('inventory_ledger_merchant_event_idx_key', 'inventory_ledger',
                                ['merchant_id', 'event_id', 'idx'])
    for name, (table, columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
        op.create_index(name, table, ['merchant_id', *columns])
    op.drop_index('ix_orders_po_lower', table_name='orders')
    op.create_index('ix_orders_po_lower', 'orders', ['merchant_id', sa.literal_column('lower(po_number)')])
    op.drop_index('ix_order_lines_backordered', table_name='order_lines')
    op.create_index('ix_order_lines_backordered', 'order_lines', ['merchant_id', 'order_id'],
                    postgresql_where=sa.text('backordered > 0'))
    op.create_foreign_key('order_lines_order_fkey', 'order_lines', 'orders', ['merchant_id', 'order_id'],
                          ['merchant_id', 'id'], ondelete='CASCADE')
    op.create_foreign_key('customer_profiles_customer_fkey', 'customer_profiles', 'customers',
                          ['merchant_id', 'customer_id'], ['merchant_id', 'id'], ondelete='CASCADE')
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW reservations")
    op.drop_constraint('order_lines_order_fkey', 'order_lines', type_='foreignkey')
    op.drop_constraint('customer_profiles_customer_fkey', 'customer_profiles', type_='foreignkey')
    op.drop_index('ix_order_lines_backordered', table_name='order_lines')
    op.create_index('ix_order_lines_backordered', 'order_lines', ['order_id'],
                    postgresql_where=sa.text('backordered > 0'))
    op.drop_index('ix_orders_po_lower', table_name='orders')
    op.create_index('ix_orders_po_lower', 'orders', [sa.literal_column('lower(po_number)')])
    for name, (table, columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
    op.drop_constraint('inventory_ledger_merchant_event_idx_key', 'inventory_ledger', type_='unique')
    op.create_unique_constraint('inventory_ledger_event_id_idx_key', 'inventory_ledger', ['event_id', 'idx'])
    op.drop_constraint('receipts_merchant_reference_key', 'receipts', type_='unique')
    op.create_unique_constraint('receipts_reference_key', 'receipts', ['reference'])
    op.drop_constraint('orders_merchant_seq_key', 'orders', type_='unique')
    op.create_unique_constraint('orders_seq_key', 'orders', ['seq'])
    op.create_index('ix_orders_seq', 'orders', ['seq'])
    for table, columns in KEYS.items():
        op.drop_constraint(f'{table}_pkey', table, type_='primary')
        op.create_primary_key(f'{table}_pkey', table, columns)
    for table in [*KEYS, 'inventory_ledger']:
        op.drop_column(table, 'merchant_id')
    op.create_foreign_key('order_lines_order_id_fkey', 'order_lines', 'orders', ['order_id'], ['id'],
                          ondelete='CASCADE')
    op.create_foreign_key('customer_profiles_customer_id_fkey', 'customer_profiles', 'customers',
                          ['customer_id'], ['id'], ondelete='CASCADE')
    op.execute(OLD_VIEW)
    op.drop_table('merchants')
