"""custom fields: their definitions per tenant, tickets.fields, and one indexed row per value

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-15 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fields', sa.JSON(), nullable=True))
    op.create_table(
        'custom_fields',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('type', sa.String(length=16), nullable=False),
        sa.Column('label', sa.String(length=200), server_default='', nullable=False),
        sa.Column('required', sa.Boolean(), server_default='0', nullable=False),
        sa.Column('choices', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name='fk_custom_fields_tenant_id_tenants'),
        sa.PrimaryKeyConstraint('id', name='pk_custom_fields'),
        sa.UniqueConstraint('tenant_id', 'name', name='uq_custom_fields_tenant_name'),
    )
    op.create_table(
        'ticket_field_values',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('value_text', sa.String(length=500), nullable=False),
        sa.Column('value_num', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name='fk_ticket_field_values_tenant_id_tenants'),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name='fk_ticket_field_values_ticket_id_tickets'),
        sa.PrimaryKeyConstraint('id', name='pk_ticket_field_values'),
    )
    op.create_index('ix_ticket_field_values_text', 'ticket_field_values', ['tenant_id', 'name', 'value_text'])
    op.create_index('ix_ticket_field_values_num', 'ticket_field_values', ['tenant_id', 'name', 'value_num'])
    op.create_index('ix_ticket_field_values_ticket', 'ticket_field_values', ['ticket_id', 'name'])


def downgrade() -> None:
    op.drop_index('ix_ticket_field_values_ticket', table_name='ticket_field_values')
    op.drop_index('ix_ticket_field_values_num', table_name='ticket_field_values')
    op.drop_index('ix_ticket_field_values_text', table_name='ticket_field_values')
    op.drop_table('ticket_field_values')
    op.drop_table('custom_fields')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('fields')
