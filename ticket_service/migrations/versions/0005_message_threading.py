"""messages: thread_rule and thread_trail (how each was threaded); tickets: cc

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thread_rule', sa.String(length=32), server_default='', nullable=False))
        batch_op.add_column(sa.Column('thread_trail', sa.JSON(), nullable=True))
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cc', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('cc')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('thread_trail')
        batch_op.drop_column('thread_rule')
