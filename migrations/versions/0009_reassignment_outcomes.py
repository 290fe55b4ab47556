"""customer satisfaction scores and post-reassignment monitoring (issue 9)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 15:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'satisfaction_score',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('scored_on', sa.Date(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
        sa.Column('score', sa.Integer(), nullable=False),
        sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('created_at', models.types.UTCDateTime(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['created_by_id'], ['employee.id']),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('customer_id', 'scored_on', 'kind', 'source'),
    )
    op.create_index(op.f('ix_satisfaction_score_customer_id'), 'satisfaction_score',
                    ['customer_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_satisfaction_score_customer_id'), table_name='satisfaction_score')
    op.drop_table('satisfaction_score')
