"""users, tokens and UWS jobs

Revision ID: 0001
Revises:
Create Date: 2026-11-26 16:13:20.756027
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('user_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_user_id'), ['user_id'], unique=False)

    op.create_table('job',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('job_type', sa.String(length=64), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=255), nullable=True),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('creation_time', sa.DateTime(), nullable=False),
    sa.Column('start_time', sa.DateTime(), nullable=True),
    sa.Column('end_time', sa.DateTime(), nullable=True),
    sa.Column('execution_duration', sa.Integer(), nullable=False),
    sa.Column('destruction', sa.DateTime(), nullable=False),
    sa.Column('quote', sa.DateTime(), nullable=True),
    sa.Column('queue', sa.String(length=16), nullable=False),
    sa.Column('error_type', sa.String(length=16), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('error_detail', sa.Text(), nullable=True),
    sa.Column('progress', sa.Float(), nullable=True),
    sa.Column('progress_message', sa.Text(), nullable=True),
    sa.Column('queued_at', sa.DateTime(), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(), nullable=True),
    sa.Column('dispatch_count', sa.Integer(), nullable=False),
    sa.Column('lease_host', sa.String(length=255), nullable=True),
    sa.Column('lease_pid', sa.Integer(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('phase_changed_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index('ix_job_destruction', ['destruction'], unique=False)
        batch_op.create_index('ix_job_owner_phase_creation', ['owner_id', 'phase', 'creation_time'], unique=False)
        batch_op.create_index('ix_job_phase_changed', ['phase_changed_at'], unique=False)
        batch_op.create_index('ix_job_phase_queued', ['phase', 'queued_at'], unique=False)
        batch_op.create_index('ix_job_type_owner_creation', ['job_type', 'owner_id', 'creation_time'], unique=False)

    op.create_table('job_parameter',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('is_post', sa.Boolean(), nullable=False),
    sa.Column('by_reference', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'position')
    )
    op.create_table('job_result',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('result_id', sa.String(length=255), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('mime_type', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'result_id')
    )


def downgrade() -> None:
    op.drop_table('job_result')
    op.drop_table('job_parameter')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_type_owner_creation')
        batch_op.drop_index('ix_job_phase_queued')
        batch_op.drop_index('ix_job_phase_changed')
        batch_op.drop_index('ix_job_owner_phase_creation')
        batch_op.drop_index('ix_job_destruction')

    op.drop_table('job')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_user_id'))

    op.drop_table('api_token')
    op.drop_table('user_account')
