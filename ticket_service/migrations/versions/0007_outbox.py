"""outbox: replies waiting to be sent and their delivery; messages: kind and author

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-10 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), server_default='', nullable=False))
        batch_op.add_column(sa.Column('author_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_messages_author_id_agents', 'agents', ['author_id'], ['id'])
    op.create_table(
        'outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=32), nullable=False),
        sa.Column('mode', sa.String(length=8), server_default='send', nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('recipient', sa.String(length=320), server_default='', nullable=False),
        sa.Column('recipient_name', sa.String(length=200), server_default='', nullable=False),
        sa.Column('handle', sa.String(length=255), server_default='', nullable=False),
        sa.Column('reply_to', sa.String(length=320), server_default='', nullable=False),
        sa.Column('in_reply_to', sa.String(length=998), server_default='', nullable=False),
        sa.Column('refs', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), server_default='queued', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_attempt_at', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('lease_until', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('relayed_at', sa.BigInteger(), nullable=True),
        sa.Column('relay_entry', sa.String(length=32), server_default='', nullable=False),
        sa.Column('last_error_code', sa.String(length=64), server_default='', nullable=False),
        sa.Column('last_error', sa.Text(), server_default='', nullable=False),
        sa.Column('platform_id', sa.String(length=255), server_default='', nullable=False),
        sa.Column('idempotency_key', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('sent_at', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name='fk_outbox_tenant_id_tenants'),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name='fk_outbox_ticket_id_tickets'),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name='fk_outbox_message_id_messages'),
        sa.ForeignKeyConstraint(['account_id'], ['channel_accounts.id'], name='fk_outbox_account_id_channel_accounts'),
        sa.PrimaryKeyConstraint('id', name='pk_outbox'),
        sa.UniqueConstraint('message_id', name='uq_outbox_message_id'),
        sa.UniqueConstraint('tenant_id', 'idempotency_key', name='uq_outbox_tenant_idempotency_key'),
    )
    op.create_index('ix_outbox_status_relayed_next', 'outbox', ['status', 'relayed_at', 'next_attempt_at'])


def downgrade() -> None:
    op.drop_index('ix_outbox_status_relayed_next', table_name='outbox')
    op.drop_table('outbox')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint('fk_messages_author_id_agents', type_='foreignkey')
        batch_op.drop_column('author_id')
        batch_op.drop_column('kind')
