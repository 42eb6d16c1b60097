"""shopify: the available sync's state and write-ahead records, for a rebuild

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shopify_sync_state',
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('lineage', sa.BigInteger(), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('pushed', sa.BigInteger(), nullable=True),
    sa.Column('gen', sa.BigInteger(), nullable=False),
    sa.Column('settle', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sku')
    )
    op.create_table('shopify_sync_wal',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('record', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index(op.f('ix_shopify_sync_wal_created_at'), 'shopify_sync_wal', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_shopify_sync_wal_created_at'), table_name='shopify_sync_wal')
    op.drop_table('shopify_sync_wal')
    op.drop_table('shopify_sync_state')
