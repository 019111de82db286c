"""identities: index (tenant_id, value), the lookup every message makes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 01:50:00.000000
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.create_index('ix_identities_tenant_value', ['tenant_id', 'value'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.drop_index('ix_identities_tenant_value')
