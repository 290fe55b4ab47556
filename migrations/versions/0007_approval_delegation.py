"""approval delegation, "on behalf of" decisions, contact fields

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 12:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'approval_delegation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('delegator_id', sa.Integer(), nullable=False),
        sa.Column('delegate_id', sa.Integer(), nullable=False),
        sa.Column('starts_on', sa.Date(), nullable=False),
        sa.Column('ends_on', sa.Date(), nullable=False),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column('created_at', models.types.UTCDateTime(), nullable=False),
        sa.Column('revoked_at', models.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['delegate_id'], ['employee.id']),
        sa.ForeignKeyConstraint(['delegator_id'], ['employee.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_approval_delegation_delegate_id'), 'approval_delegation',
                    ['delegate_id'], unique=False)
    op.create_index(op.f('ix_approval_delegation_delegator_id'), 'approval_delegation',
                    ['delegator_id'], unique=False)
    with op.batch_alter_table('approval_step') as batch:
        batch.add_column(sa.Column('decided_on_behalf_of_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_approval_step_decided_on_behalf_of_id_employee',
                                 'employee', ['decided_on_behalf_of_id'], ['id'])
    with op.batch_alter_table('customer') as batch:
        batch.add_column(sa.Column('contact_name', sqlmodel.sql.sqltypes.AutoString(length=200),
                                   nullable=True))
        batch.add_column(sa.Column('contact_phone', sqlmodel.sql.sqltypes.AutoString(length=40),
                                   nullable=True))
        batch.add_column(sa.Column('contact_email', sqlmodel.sql.sqltypes.AutoString(length=320),
                                   nullable=True))
    with op.batch_alter_table('employee') as batch:
        batch.add_column(sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=40),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('employee') as batch:
        batch.drop_column('phone')
    with op.batch_alter_table('customer') as batch:
        batch.drop_column('contact_email')
        batch.drop_column('contact_phone')
        batch.drop_column('contact_name')
    with op.batch_alter_table('approval_step') as batch:
        batch.drop_constraint('fk_approval_step_decided_on_behalf_of_id_employee',
                              type_='foreignkey')
        batch.drop_column('decided_on_behalf_of_id')
    op.drop_index(op.f('ix_approval_delegation_delegator_id'), table_name='approval_delegation')
    op.drop_index(op.f('ix_approval_delegation_delegate_id'), table_name='approval_delegation')
    op.drop_table('approval_delegation')
