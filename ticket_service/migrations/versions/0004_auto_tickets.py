"""tickets: auto and auto_reason (bulk mail's tickets); index messages by auto_reason

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auto', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('auto_reason', sa.String(length=64), server_default='', nullable=False))
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_tenant_auto_reason', ['tenant_id', 'auto_reason', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_tenant_auto_reason')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('auto_reason')
        batch_op.drop_column('auto')
