"""routing_rules: the policy fields in one JSON column (policy), so new ones need no migration

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-08 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_POLICY = ('required', 'preferred', 'priority', 'min_tier', 'escalate_after_s', 'widen')


def _rules(columns: tuple[str, ...]) -> sa.Table:
    json_columns = {'required', 'preferred', 'widen', 'policy'}
    return sa.table('routing_rules', sa.column('id', sa.Integer()),
                    *(sa.column(c, sa.JSON() if c in json_columns else sa.Integer()) for c in columns))


def upgrade() -> None:
    with op.batch_alter_table('routing_rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('policy', sa.JSON(), nullable=True))
    conn = op.get_bind()
    old, new = _rules(_POLICY), _rules(('policy',))
    for row in conn.execute(sa.select(old)).mappings().all():
        policy = {c: row[c] for c in _POLICY}
        conn.execute(new.update().where(new.c.id == row['id']).values(policy=policy))
    with op.batch_alter_table('routing_rules', schema=None) as batch_op:
        batch_op.alter_column('policy', existing_type=sa.JSON(), nullable=False)
        for column in _POLICY:
            batch_op.drop_column(column)


def downgrade() -> None:
    with op.batch_alter_table('routing_rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('required', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('preferred', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('priority', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('min_tier', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('escalate_after_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('widen', sa.JSON(), nullable=True))
    conn = op.get_bind()
    old, new = _rules(('policy',)), _rules(_POLICY)
    for row in conn.execute(sa.select(old)).mappings().all():
        policy = row['policy'] or {}
        conn.execute(new.update().where(new.c.id == row['id']).values(
            required=policy.get('required', {}), preferred=policy.get('preferred', {}),
            priority=policy.get('priority', 0), min_tier=policy.get('min_tier', 0),
            escalate_after_s=policy.get('escalate_after_s'), widen=policy.get('widen', {})))
    with op.batch_alter_table('routing_rules', schema=None) as batch_op:
        for column in ('required', 'preferred', 'widen'):
            batch_op.alter_column(column, existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column('policy')
