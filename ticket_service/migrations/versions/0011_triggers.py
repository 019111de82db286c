"""triggers, automations and their audit; tickets: status_at, trigger-set requirements

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-20 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _rules_table(name: str, *extra: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        *extra,
        sa.Column('conditions', sa.JSON(), nullable=False),
        sa.Column('actions', sa.JSON(), nullable=False),
        sa.Column('active', sa.Boolean(), server_default='1', nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=f'fk_{name}_tenant_id_tenants'),
        sa.PrimaryKeyConstraint('id', name=f'pk_{name}'),
    )
    op.create_index(f'ix_{name}_tenant_position', name, ['tenant_id', 'position'])


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_at', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('requirements', sa.JSON(), nullable=True))
    # The last change anyone can tell for a ticket stored before: its closing, else its last activity.
    op.execute("UPDATE tickets SET status_at = COALESCE(closed_at, updated_at)")
    op.create_index('ix_tickets_tenant_status_status_at', 'tickets', ['tenant_id', 'status', 'status_at'])
    op.create_index('ix_tickets_tenant_updated_at', 'tickets', ['tenant_id', 'updated_at'])
    op.create_index('ix_tickets_tenant_created_at', 'tickets', ['tenant_id', 'created_at'])
    _rules_table('triggers', sa.Column('events', sa.JSON(), nullable=False))
    _rules_table('automations')
    op.create_table(
        'audit',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.String(length=64), nullable=False),
        sa.Column('event_type', sa.String(length=64), nullable=False),
        sa.Column('trigger_id', sa.Integer(), nullable=True),
        sa.Column('automation_id', sa.Integer(), nullable=True),
        sa.Column('episode', sa.BigInteger(), nullable=True),
        sa.Column('name', sa.String(length=200), server_default='', nullable=False),
        sa.Column('actions', sa.JSON(), nullable=False),
        sa.Column('result', sa.String(length=16), nullable=False),
        sa.Column('error', sa.Text(), server_default='', nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name='fk_audit_tenant_id_tenants'),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name='fk_audit_ticket_id_tickets'),
        sa.PrimaryKeyConstraint('id', name='pk_audit'),
        sa.UniqueConstraint('event_id', 'trigger_id', name='uq_audit_event_trigger'),
        sa.UniqueConstraint('automation_id', 'ticket_id', 'episode', name='uq_audit_automation_episode'),
    )
    op.create_index('ix_audit_ticket_id', 'audit', ['ticket_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_audit_ticket_id', table_name='audit')
    op.drop_table('audit')
    for name in ('automations', 'triggers'):
        op.drop_index(f'ix_{name}_tenant_position', table_name=name)
        op.drop_table(name)
    for index in ('ix_tickets_tenant_created_at', 'ix_tickets_tenant_updated_at',
                  'ix_tickets_tenant_status_status_at'):
        op.drop_index(index, table_name='tickets')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('requirements')
        batch_op.drop_column('status_at')
