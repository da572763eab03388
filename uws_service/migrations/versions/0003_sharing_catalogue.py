"""sharing and the ObsCore catalogue

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 18:54:08.628853
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('file_share',
    sa.Column('node_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['file_node.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('node_id', 'user_id')
    )
    with op.batch_alter_table('file_share', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_file_share_user_id'), ['user_id'], unique=False)

    op.create_table('obscore',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=False),
    sa.Column('spectrum_index', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('dataproduct_type', sa.String(length=16), nullable=False),
    sa.Column('calib_level', sa.Integer(), nullable=False),
    sa.Column('obs_collection', sa.String(length=255), nullable=False),
    sa.Column('obs_id', sa.String(length=255), nullable=False),
    sa.Column('obs_publisher_did', sa.String(length=255), nullable=False),
    sa.Column('access_url', sa.Text(), nullable=False),
    sa.Column('access_format', sa.String(length=128), nullable=False),
    sa.Column('access_estsize', sa.BigInteger(), nullable=False),
    sa.Column('target_name', sa.String(length=255), nullable=True),
    sa.Column('s_ra', sa.Float(), nullable=True),
    sa.Column('s_dec', sa.Float(), nullable=True),
    sa.Column('s_fov', sa.Float(), nullable=True),
    sa.Column('s_region', sa.Text(), nullable=True),
    sa.Column('s_resolution', sa.Float(), nullable=True),
    sa.Column('s_xel1', sa.BigInteger(), nullable=True),
    sa.Column('s_xel2', sa.BigInteger(), nullable=True),
    sa.Column('t_min', sa.Float(), nullable=True),
    sa.Column('t_max', sa.Float(), nullable=True),
    sa.Column('t_exptime', sa.Float(), nullable=True),
    sa.Column('t_resolution', sa.Float(), nullable=True),
    sa.Column('t_xel', sa.BigInteger(), nullable=True),
    sa.Column('em_min', sa.Float(), nullable=True),
    sa.Column('em_max', sa.Float(), nullable=True),
    sa.Column('em_res_power', sa.Float(), nullable=True),
    sa.Column('em_xel', sa.BigInteger(), nullable=True),
    sa.Column('em_ucd', sa.String(length=64), nullable=True),
    sa.Column('o_ucd', sa.String(length=128), nullable=True),
    sa.Column('o_unit', sa.String(length=64), nullable=True),
    sa.Column('pol_states', sa.String(length=64), nullable=True),
    sa.Column('pol_xel', sa.BigInteger(), nullable=True),
    sa.Column('facility_name', sa.String(length=255), nullable=True),
    sa.Column('instrument_name', sa.String(length=255), nullable=True),
    sa.Column('em_medium', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['file_node.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('obs_publisher_did')
    )
    with op.batch_alter_table('obscore', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_obscore_node_id'), ['node_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_obscore_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_obscore_position', ['s_ra', 's_dec'], unique=False)
        batch_op.create_index('ix_obscore_visibility', ['visibility'], unique=False)

    with op.batch_alter_table('file_node', schema=None) as batch_op:
        batch_op.add_column(sa.Column('spectra', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('catalogue_error', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('file_node', schema=None) as batch_op:
        batch_op.drop_column('catalogue_error')
        batch_op.drop_column('spectra')

    with op.batch_alter_table('obscore', schema=None) as batch_op:
        batch_op.drop_index('ix_obscore_visibility')
        batch_op.drop_index('ix_obscore_position')
        batch_op.drop_index(batch_op.f('ix_obscore_owner_id'))
        batch_op.drop_index(batch_op.f('ix_obscore_node_id'))

    op.drop_table('obscore')
    with op.batch_alter_table('file_share', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_file_share_user_id'))

    op.drop_table('file_share')
