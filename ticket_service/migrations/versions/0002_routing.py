"""routing: agent capacity and load columns, rules, queue, decisions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 16:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_AGENT_INTS = ('cap_email', 'cap_chat', 'cap_voice', 'load_email', 'load_chat', 'load_voice')


def upgrade() -> None:
    with op.batch_alter_table('agents', schema=None) as batch_op:
        for name in _AGENT_INTS:
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_assigned_at', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('status_at', sa.BigInteger(), server_default='0', nullable=False))
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_agent_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('assigned_at', sa.BigInteger(), nullable=True))

    op.create_table('routing_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('match', sa.JSON(), nullable=False),
    sa.Column('required', sa.JSON(), nullable=False),
    sa.Column('preferred', sa.JSON(), nullable=False),
    sa.Column('priority', sa.Integer(), server_default='0', nullable=False),
    sa.Column('min_tier', sa.Integer(), server_default='0', nullable=False),
    sa.Column('escalate_after_s', sa.Integer(), nullable=True),
    sa.Column('widen', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_routing_rules_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_rules'))
    )
    with op.batch_alter_table('routing_rules', schema=None) as batch_op:
        batch_op.create_index('ix_routing_rules_tenant_position', ['tenant_id', 'position'], unique=False)

    op.create_table('routing_queue',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('channel_class', sa.String(length=8), nullable=False),
    sa.Column('vip_tier', sa.Integer(), server_default='0', nullable=False),
    sa.Column('rank', sa.BigInteger(), nullable=False),
    sa.Column('queued_at', sa.BigInteger(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=True),
    sa.Column('requirements', sa.JSON(), nullable=False),
    sa.Column('stage', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_stage_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_routing_queue_tenant_id_tenants')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_routing_queue_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_queue')),
    sa.UniqueConstraint('ticket_id', name=op.f('uq_routing_queue_ticket_id'))
    )
    with op.batch_alter_table('routing_queue', schema=None) as batch_op:
        batch_op.create_index('ix_routing_queue_tenant_class_rank', ['tenant_id', 'channel_class', 'rank'],
                              unique=False)
        batch_op.create_index('ix_routing_queue_next_stage_at', ['next_stage_at'], unique=False)

    op.create_table('routing_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('rule_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('elapsed_us', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_routing_decisions_tenant_id_tenants')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_routing_decisions_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_decisions'))
    )
    with op.batch_alter_table('routing_decisions', schema=None) as batch_op:
        batch_op.create_index('ix_routing_decisions_ticket', ['ticket_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('routing_decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_routing_decisions_ticket')
    op.drop_table('routing_decisions')
    with op.batch_alter_table('routing_queue', schema=None) as batch_op:
        batch_op.drop_index('ix_routing_queue_next_stage_at')
        batch_op.drop_index('ix_routing_queue_tenant_class_rank')
    op.drop_table('routing_queue')
    with op.batch_alter_table('routing_rules', schema=None) as batch_op:
        batch_op.drop_index('ix_routing_rules_tenant_position')
    op.drop_table('routing_rules')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('assigned_at')
        batch_op.drop_column('language')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('last_agent_id')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('status_at')
        batch_op.drop_column('last_assigned_at')
        for name in reversed(_AGENT_INTS):
            batch_op.drop_column(name)
