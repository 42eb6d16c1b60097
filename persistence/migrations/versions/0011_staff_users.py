"""staff users of the web UI (one merchant's each); the indexes its searches need

Revision ID: 0011
Revises: 0013
Create Date: 2026-12-10
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'users',
        sa.Column('merchant_id', sa.String(length=64), nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('email', sa.String(length=255), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('disabled', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('doc', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('merchant_id', 'id'),
        sa.UniqueConstraint('merchant_id', 'email', name='uq_users_merchant_email'),
    )
    # SKU autocomplete: a prefix of the SKU, the name (any case) or the UPC
    op.execute("CREATE INDEX ix_skus_sku_prefix ON skus (merchant_id, lower(sku) text_pattern_ops)")
    op.execute("CREATE INDEX ix_skus_name_prefix ON skus (merchant_id, lower(name) text_pattern_ops)")
    op.execute("CREATE INDEX ix_skus_upc_prefix ON skus (merchant_id, upc text_pattern_ops)")
    # order lists filtered by status (and channel), newest first, a page at a time
    op.create_index('ix_orders_status_channel_seq', 'orders', ['merchant_id', 'status', 'channel', 'seq'])
    # when the Shopify sync last committed a SKU's quantity (restored by a rebuild)
    op.add_column('shopify_sync_state', sa.Column('pushed_at', sa.DateTime(timezone=True), nullable=True))
    # order search by tracking number, any case
    op.execute("CREATE INDEX ix_shipments_tracking_lower ON shipments (merchant_id, lower(tracking_number))")


def downgrade() -> None:
    op.drop_index('ix_shipments_tracking_lower', table_name='shipments')
    op.drop_column('shopify_sync_state', 'pushed_at')
    op.drop_index('ix_orders_status_channel_seq', table_name='orders')
    op.drop_index('ix_skus_upc_prefix', table_name='skus')
    op.drop_index('ix_skus_name_prefix', table_name='skus')
    op.drop_index('ix_skus_sku_prefix', table_name='skus')
    op.drop_table('users')
