"""documents: EDI counters, outgoing documents, cartons, invoices, item references

Revision ID: 0012
Revises: 0014
Create Date: 2026-12-10
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0012'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('edi_counters',
    sa.Column('merchant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('merchant_id', 'name')
    )
    op.create_table('edi_item_refs',
    sa.Column('merchant_id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('buyer_item', sa.String(length=128), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('merchant_id', 'customer_id', 'buyer_item')
    )
    op.create_table('edi_documents',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('merchant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('dedupe_key', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=True),
    sa.Column('order_id', sa.String(length=64), nullable=True),
    sa.Column('shipment_id', sa.String(length=64), nullable=True),
    sa.Column('po_number', sa.String(length=128), nullable=True),
    sa.Column('partner', sa.String(length=32), nullable=True),
    sa.Column('isa_control', sa.BigInteger(), nullable=True),
    sa.Column('gs_control', sa.BigInteger(), nullable=True),
    sa.Column('st_controls', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=True),
    sa.Column('content', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('merchant_id', 'dedupe_key')
    )
    op.create_index('ux_edi_documents_isa', 'edi_documents', ['merchant_id', 'isa_control'], unique=True,
                    postgresql_where=sa.text('isa_control IS NOT NULL'))
    op.create_index('ix_edi_documents_order', 'edi_documents', ['merchant_id', 'order_id'], unique=False)
    op.create_index('ix_edi_documents_unsent', 'edi_documents', ['merchant_id', 'status'], unique=False)
    op.create_table('shipment_cartons',
    sa.Column('merchant_id', sa.String(length=64), nullable=False),
    sa.Column('shipment_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('sscc', sa.String(length=18), nullable=True),
    sa.Column('serial', sa.BigInteger(), nullable=True),
    sa.Column('lines', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('merchant_id', 'shipment_id', 'kind', 'number')
    )
    op.create_index('ix_shipment_cartons_shipment', 'shipment_cartons', ['merchant_id', 'shipment_id'], unique=False)
    # an SSCC is never given twice: a reused serial would fail here loudly
    op.create_index('ux_shipment_cartons_sscc', 'shipment_cartons', ['merchant_id', 'sscc'], unique=True,
                    postgresql_where=sa.text('sscc IS NOT NULL'))
    op.create_table('invoices',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('merchant_id', sa.String(length=64), nullable=False),
    sa.Column('number', sa.BigInteger(), nullable=False),
    sa.Column('shipment_id', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=True),
    sa.Column('po_number', sa.String(length=128), nullable=True),
    sa.Column('payment_terms', sa.String(length=16), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('invoice_date', sa.Date(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('lines', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('merchant_id', 'number'),
    sa.UniqueConstraint('merchant_id', 'shipment_id')
    )
    op.create_index('ix_invoices_customer_due', 'invoices', ['merchant_id', 'customer_id', 'due_date'], unique=False)
    # partners are found by their EDI identity inside the customer's profiles
    op.create_index('ix_customers_doc', 'customers', ['doc'], unique=False, postgresql_using='gin',
                    postgresql_ops={'doc': 'jsonb_path_ops'})


def downgrade() -> None:
    op.drop_index('ix_customers_doc', table_name='customers')
    op.drop_index('ix_invoices_customer_due', table_name='invoices')
    op.drop_table('invoices')
    op.drop_index('ux_shipment_cartons_sscc', table_name='shipment_cartons')
    op.drop_index('ix_shipment_cartons_shipment', table_name='shipment_cartons')
    op.drop_table('shipment_cartons')
    op.drop_index('ix_edi_documents_unsent', table_name='edi_documents')
    op.drop_index('ix_edi_documents_order', table_name='edi_documents')
    op.drop_index('ux_edi_documents_isa', table_name='edi_documents')
    op.drop_table('edi_documents')
    op.drop_table('edi_item_refs')
    op.drop_table('edi_counters')
