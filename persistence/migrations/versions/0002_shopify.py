"""shopify: pending cancels and refunds, fulfillment pushes, shipments by time

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shopify_pending',
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('shopify_order_id', sa.String(length=32), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('action', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index(op.f('ix_shopify_pending_shopify_order_id'), 'shopify_pending', ['shopify_order_id'], unique=False)
    op.create_index(op.f('ix_shopify_pending_expires_at'), 'shopify_pending', ['expires_at'], unique=False)
    op.create_table('shopify_fulfillments',
    sa.Column('shipment_id', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('shopify_order_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('fulfillment_ids', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('shipment_id')
    )
    op.create_index(op.f('ix_shopify_fulfillments_order_id'), 'shopify_fulfillments', ['order_id'], unique=False)
    op.create_index(op.f('ix_shopify_fulfillments_status'), 'shopify_fulfillments', ['status'], unique=False)
    op.create_index(op.f('ix_shipments_shipped_at'), 'shipments', ['shipped_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_shipments_shipped_at'), table_name='shipments')
    op.drop_index(op.f('ix_shopify_fulfillments_status'), table_name='shopify_fulfillments')
    op.drop_index(op.f('ix_shopify_fulfillments_order_id'), table_name='shopify_fulfillments')
    op.drop_table('shopify_fulfillments')
    op.drop_index(op.f('ix_shopify_pending_expires_at'), table_name='shopify_pending')
    op.drop_index(op.f('ix_shopify_pending_shopify_order_id'), table_name='shopify_pending')
    op.drop_table('shopify_pending')
