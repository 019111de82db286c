"""calendars, sla_policies, sla_clocks (due-time index on next_at) and the sla_outcomes view

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-12 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# Met or breached per ticket and metric, for reports: a clock that breached in any cycle
# counts as breached; one still counting is open.
_OUTCOMES = """
CREATE VIEW sla_outcomes AS
SELECT tenant_id, ticket_id, metric, policy, cycle, breaches, started_at, due_at, met_at, breached_at,
       CASE WHEN state = 'breached' OR breaches > 0 THEN 'breached'
            WHEN state = 'met' THEN 'met'
            ELSE 'open' END AS outcome
FROM sla_clocks
"""


def _tenant() -> sa.Column:
    return sa.Column('tenant_id', sa.Integer(), nullable=False)


def upgrade() -> None:
    op.create_table(
        'calendars',
        sa.Column('id', sa.Integer(), nullable=False),
        _tenant(),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('spec', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name='fk_calendars_tenant_id_tenants'),
        sa.PrimaryKeyConstraint('id', name='pk_calendars'),
        sa.UniqueConstraint('tenant_id', 'name', name='uq_calendars_tenant_name'),
    )
    op.create_table(
        'sla_policies',
        sa.Column('id', sa.Integer(), nullable=False),
        _tenant(),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('conditions', sa.JSON(), nullable=False),
        sa.Column('targets', sa.JSON(), nullable=False),
        sa.Column('calendar', sa.String(length=100), nullable=True),
        sa.Column('warn_before_s', sa.Integer(), server_default='900', nullable=False),
        sa.Column('pause_in', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name='fk_sla_policies_tenant_id_tenants'),
        sa.PrimaryKeyConstraint('id', name='pk_sla_policies'),
        sa.UniqueConstraint('tenant_id', 'name', name='uq_sla_policies_tenant_name'),
    )
    op.create_index('ix_sla_policies_tenant_position', 'sla_policies', ['tenant_id', 'position'])
    op.create_table(
        'sla_clocks',
        sa.Column('id', sa.Integer(), nullable=False),
        _tenant(),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('metric', sa.String(length=16), nullable=False),
        sa.Column('policy_id', sa.Integer(), nullable=True),
        sa.Column('policy', sa.String(length=100), nullable=False),
        sa.Column('calendar', sa.String(length=100), nullable=True),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('target_ms', sa.BigInteger(), nullable=False),
        sa.Column('warn_ms', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('used_ms', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('run_from', sa.BigInteger(), nullable=True),
        sa.Column('started_at', sa.BigInteger(), nullable=False),
        sa.Column('due_at', sa.BigInteger(), nullable=True),
        sa.Column('warn_at', sa.BigInteger(), nullable=True),
        sa.Column('warned_at', sa.BigInteger(), nullable=True),
        sa.Column('paused_at', sa.BigInteger(), nullable=True),
        sa.Column('breached_at', sa.BigInteger(), nullable=True),
        sa.Column('met_at', sa.BigInteger(), nullable=True),
        sa.Column('next_at', sa.BigInteger(), nullable=True),
        sa.Column('cycle', sa.Integer(), server_default='1', nullable=False),
        sa.Column('breaches', sa.Integer(), server_default='0', nullable=False),
        sa.Column('start_message_id', sa.Integer(), nullable=True),
        sa.Column('announce', sa.String(length=32), server_default='', nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name='fk_sla_clocks_tenant_id_tenants'),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name='fk_sla_clocks_ticket_id_tickets'),
        sa.PrimaryKeyConstraint('id', name='pk_sla_clocks'),
        sa.UniqueConstraint('ticket_id', 'metric', name='uq_sla_clocks_ticket_metric'),
    )
    op.create_index('ix_sla_clocks_next_at', 'sla_clocks', ['next_at'])
    op.create_index('ix_sla_clocks_tenant_state', 'sla_clocks', ['tenant_id', 'state'])
    op.execute(_OUTCOMES)


def downgrade() -> None:
    op.execute("DROP VIEW sla_outcomes")
    op.drop_index('ix_sla_clocks_tenant_state', table_name='sla_clocks')
    op.drop_index('ix_sla_clocks_next_at', table_name='sla_clocks')
    op.drop_table('sla_clocks')
    op.drop_index('ix_sla_policies_tenant_position', table_name='sla_policies')
    op.drop_table('sla_policies')
    op.drop_table('calendars')
