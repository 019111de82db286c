"""webhooks and webhook_deliveries: webhooks out, their deliveries and retries

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-14 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'webhooks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=2048), nullable=False),
        sa.Column('events', sa.JSON(), nullable=False),
        sa.Column('secret_enc', sa.Text(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name='fk_webhooks_tenant_id_tenants'),
        sa.PrimaryKeyConstraint('id', name='pk_webhooks'),
    )
    op.create_index('ix_webhooks_tenant_id', 'webhooks', ['tenant_id', 'id'])
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('webhook_id', sa.Integer(), nullable=True),
        sa.Column('url', sa.String(length=2048), nullable=False),
        sa.Column('event_id', sa.String(length=26), nullable=True),
        sa.Column('event_type', sa.String(length=64), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=True),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_at', sa.BigInteger(), nullable=True),
        sa.Column('lease_until', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('window_from', sa.BigInteger(), nullable=False),
        sa.Column('response_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), server_default='', nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('last_attempt_at', sa.BigInteger(), nullable=True),
        sa.Column('delivered_at', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name='fk_webhook_deliveries_tenant_id_tenants'),
        sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], name='fk_webhook_deliveries_webhook_id_webhooks'),
        sa.PrimaryKeyConstraint('id', name='pk_webhook_deliveries'),
        sa.UniqueConstraint('webhook_id', 'event_id', name='uq_webhook_deliveries_webhook_event'),
    )
    op.create_index('ix_webhook_deliveries_next_at', 'webhook_deliveries', ['next_at'])
    op.create_index('ix_webhook_deliveries_webhook_id', 'webhook_deliveries', ['webhook_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_webhook_id', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_next_at', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_index('ix_webhooks_tenant_id', table_name='webhooks')
    op.drop_table('webhooks')
