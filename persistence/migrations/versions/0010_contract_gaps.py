"""contract gaps: continuation fills on idempotency records, backordered lines,
how a dead letter was resolved

Revision ID: 0010
Revises: 0003
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the fills continuation calls added to a stored outcome (fill.lua), so a
    # replay after a rebuild lists them as the first answer did
    op.add_column('idempotency_records', sa.Column('extra_fills', sa.Text(), nullable=True))
    op.add_column('idempotency_records', sa.Column('extra_n', sa.Integer(), nullable=False,
                                                   server_default='0'))
    # GET /v1/orders?backordered=true
    op.create_index('ix_order_lines_backordered', 'order_lines', ['order_id'],
                    postgresql_where=sa.text('backordered > 0'))
    # "replayed" (applied again, by whom) or "discarded", with a note
    op.add_column('dead_letters', sa.Column('resolution', sa.String(length=16), nullable=True))
    op.add_column('dead_letters', sa.Column('resolved_by', sa.String(length=128), nullable=True))
    op.add_column('dead_letters', sa.Column('note', sa.Text(), nullable=True))
    op.create_index('ix_inventory_ledger_at', 'inventory_ledger', ['at'])


def downgrade() -> None:
    op.drop_index('ix_inventory_ledger_at', table_name='inventory_ledger')
    op.drop_column('dead_letters', 'note')
    op.drop_column('dead_letters', 'resolved_by')
    op.drop_column('dead_letters', 'resolution')
    op.drop_index('ix_order_lines_backordered', table_name='order_lines')
    op.drop_column('idempotency_records', 'extra_n')
    op.drop_column('idempotency_records', 'extra_fills')
