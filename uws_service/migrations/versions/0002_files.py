"""stored files: the file_node catalogue of /files/{user}/{path}

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 18:09:48.073955
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('file_node',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('is_dir', sa.Boolean(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('md5', sa.String(length=32), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('content_type', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('modified_at', sa.DateTime(), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner_id', 'path', name='uq_file_node_owner_path')
    )
    with op.batch_alter_table('file_node', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_file_node_owner_id'), ['owner_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('file_node', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_file_node_owner_id'))

    op.drop_table('file_node')
