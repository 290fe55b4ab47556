"""notification delivery over e-mail and group-robot webhooks (issue 9)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 15:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'notification_delivery',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('notification_id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column('created_at', models.types.UTCDateTime(), nullable=False),
        sa.Column('claimed_at', models.types.UTCDateTime(), nullable=True),
        sa.Column('sent_at', models.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['notification_id'], ['notification.id']),
        sa.ForeignKeyConstraint(['request_id'], ['reassignment_request.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('notification_id', 'channel'),
    )
    op.create_index(op.f('ix_notification_delivery_notification_id'), 'notification_delivery',
                    ['notification_id'], unique=False)
    op.create_index(op.f('ix_notification_delivery_request_id'), 'notification_delivery',
                    ['request_id'], unique=False)
    op.create_index(op.f('ix_notification_delivery_status'), 'notification_delivery',
                    ['status'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_notification_delivery_status'), table_name='notification_delivery')
    op.drop_index(op.f('ix_notification_delivery_request_id'),
                  table_name='notification_delivery')
    op.drop_index(op.f('ix_notification_delivery_notification_id'),
                  table_name='notification_delivery')
    op.drop_table('notification_delivery')
