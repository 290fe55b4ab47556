"""org_unit.code: the natural key of the data import (issue 9)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 15:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('org_unit') as batch:
        batch.add_column(sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=40),
                                   nullable=True))
        batch.create_unique_constraint('uq_org_unit_code', ['code'])
    # units stored before codes existed get one, so an export can name them and a rerun of
    # its files matches them
    op.execute("UPDATE org_unit SET code = 'OU' || CAST(id AS VARCHAR(20)) WHERE code IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('org_unit') as batch:
        batch.drop_constraint('uq_org_unit_code', type_='unique')
        batch.drop_column('code')
