"""login hardening: lock-out, token revocation, refresh tokens

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 12:10:00

- user_account: the failure streak and its lock (failed_login_count, last_failed_login_at,
  locked_until), token_version (carried in access tokens as "ver"; bumping it revokes them),
  password_changed_at and last_login_at. Existing accounts start unlocked at version 0.
- refresh_token: hashed, rotating refresh tokens; a family is one session.
- login_failure: the same failure streaks for usernames without an account (HMAC-keyed).
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_login_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('locked_until', models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_failed_login_at', models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('token_version', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('password_changed_at', models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_login_at', models.types.UTCDateTime(timezone=True), nullable=True))

    op.create_table('refresh_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('family_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoke_reason', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
    sa.Column('replaced_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['user_account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('refresh_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_token_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_token_family_id'), ['family_id'], unique=False)

    op.create_table('login_failure',
    sa.Column('username_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('failed_count', sa.Integer(), nullable=False),
    sa.Column('locked_until', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_failed_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('username_key')
    )
    with op.batch_alter_table('login_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_failure_last_failed_at'), ['last_failed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('login_failure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_failure_last_failed_at'))
    op.drop_table('login_failure')

    with op.batch_alter_table('refresh_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_token_family_id'))
        batch_op.drop_index(batch_op.f('ix_refresh_token_account_id'))
    op.drop_table('refresh_token')

    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('last_login_at')
        batch_op.drop_column('password_changed_at')
        batch_op.drop_column('token_version')
        batch_op.drop_column('last_failed_login_at')
        batch_op.drop_column('locked_until')
        batch_op.drop_column('failed_login_count')
