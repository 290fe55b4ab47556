"""bulk reorganisations and their rows (issue 9)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 15:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'reorganisation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=200),
                  nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=False),
        sa.Column('created_at', models.types.UTCDateTime(), nullable=False),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('file_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('file_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('policy_version_id', sa.Integer(), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column('total_rows', sa.Integer(), nullable=False),
        sa.Column('total_groups', sa.Integer(), nullable=False),
        sa.Column('started_groups', sa.Integer(), nullable=False),
        sa.Column('failed_groups', sa.Integer(), nullable=False),
        sa.Column('started_rows', sa.Integer(), nullable=False),
        sa.Column('failed_rows', sa.Integer(), nullable=False),
        sa.Column('totals', sa.JSON(), nullable=False),
        sa.Column('cancelled_by_id', sa.Integer(), nullable=True),
        sa.Column('cancel_reason', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column('finished_at', models.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['cancelled_by_id'], ['employee.id']),
        sa.ForeignKeyConstraint(['created_by_id'], ['employee.id']),
        sa.ForeignKeyConstraint(['policy_version_id'], ['policy_version.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('created_by_id', 'idempotency_key'),
        sa.UniqueConstraint('workflow_id'),
    )
    op.create_index(op.f('ix_reorganisation_created_by_id'), 'reorganisation',
                    ['created_by_id'], unique=False)
    op.create_index(op.f('ix_reorganisation_status'), 'reorganisation', ['status'],
                    unique=False)
    op.create_table(
        'reorganisation_row',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reorganisation_id', sa.Integer(), nullable=False),
        sa.Column('row_number', sa.Integer(), nullable=False),
        sa.Column('group_no', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('from_employee_id', sa.Integer(), nullable=False),
        sa.Column('to_employee_id', sa.Integer(), nullable=False),
        sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column('request_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id']),
        sa.ForeignKeyConstraint(['from_employee_id'], ['employee.id']),
        sa.ForeignKeyConstraint(['reorganisation_id'], ['reorganisation.id']),
        sa.ForeignKeyConstraint(['request_id'], ['reassignment_request.id']),
        sa.ForeignKeyConstraint(['to_employee_id'], ['employee.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('reorganisation_id', 'row_number'),
    )
    op.create_index(op.f('ix_reorganisation_row_group_no'), 'reorganisation_row',
                    ['group_no'], unique=False)
    op.create_index(op.f('ix_reorganisation_row_reorganisation_id'), 'reorganisation_row',
                    ['reorganisation_id'], unique=False)
    op.create_index(op.f('ix_reorganisation_row_request_id'), 'reorganisation_row',
                    ['request_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_reorganisation_row_request_id'), table_name='reorganisation_row')
    op.drop_index(op.f('ix_reorganisation_row_reorganisation_id'),
                  table_name='reorganisation_row')
    op.drop_index(op.f('ix_reorganisation_row_group_no'), table_name='reorganisation_row')
    op.drop_table('reorganisation_row')
    op.drop_index(op.f('ix_reorganisation_status'), table_name='reorganisation')
    op.drop_index(op.f('ix_reorganisation_created_by_id'), table_name='reorganisation')
    op.drop_table('reorganisation')
