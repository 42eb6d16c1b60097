"""webhooks: per-endpoint backoff (failures, paused_until); claim indexes

The due index gains the claim's tie-break (id), so a claim reads an
endpoint's candidates in order and stops at its limit; a partial index on
the claimed rows lets a claim count an endpoint's leases without reading its
backlog.

Revision ID: 0016
Revises: 0011
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('webhook_endpoints', sa.Column('failures', sa.Integer(), server_default=sa.text('0'),
                                                 nullable=False))
    op.add_column('webhook_endpoints', sa.Column('paused_until', sa.DateTime(timezone=True), nullable=True))
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries',
                  postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['endpoint_id', 'next_attempt_at', 'id'],
                    unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_webhook_deliveries_claimed', 'webhook_deliveries', ['endpoint_id', 'claimed_until'],
                    unique=False, postgresql_where=sa.text("status = 'pending' AND claimed_by IS NOT NULL"))


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_claimed', table_name='webhook_deliveries',
                  postgresql_where=sa.text("status = 'pending' AND claimed_by IS NOT NULL"))
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries',
                  postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['endpoint_id', 'next_attempt_at'],
                    unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.drop_column('webhook_endpoints', 'paused_until')
    op.drop_column('webhook_endpoints', 'failures')
