"""audit hardening

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:10:00

Audit events say what (entity_type, entity_id), before and after (JSON) and why (reason);
indexes for the search filters; and the table becomes append-only in the database itself:
PostgreSQL refuses UPDATE, DELETE (row triggers) and TRUNCATE (statement trigger), SQLite
refuses UPDATE and DELETE. Whoever bypasses the triggers (DDL rights) is caught by the hash
chain (`python cli.py audit verify`).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "audit_event is append-only: {op} is refused"
HINT = ("Audit events can only be added; record a correction as a new event. "
        "Check the chain with python cli.py audit verify.")

POSTGRES_UP = [
    f"""
    CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{MESSAGE.format(op="%")}', TG_OP USING HINT = '{HINT}';
    END;
    $$
    """,
    """
    CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()
    """,
    """
    CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()
    """,
]
POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
    "DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_event",
    "DROP FUNCTION IF EXISTS audit_event_append_only()",
]
# SQLite has no TRUNCATE; DELETE without WHERE runs the trigger too.
SQLITE_UP = [
    f"""
    CREATE TRIGGER audit_event_no_{verb.lower()} BEFORE {verb} ON audit_event
    BEGIN SELECT RAISE(ABORT, '{MESSAGE.format(op=verb)}'); END
    """
    for verb in ("UPDATE", "DELETE")
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS audit_event_no_update",
               "DROP TRIGGER IF EXISTS audit_event_no_delete"]

NEW_COLUMNS = ("entity_type", "entity_id", "before", "after", "reason")


def upgrade() -> None:
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entity_type', AutoString(length=40), nullable=True))
        batch_op.add_column(sa.Column('entity_id', AutoString(length=100), nullable=True))
        batch_op.add_column(sa.Column('before', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('after', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('reason', sa.Text(), nullable=True))
        batch_op.create_index('ix_audit_event_entity', ['entity_type', 'entity_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_occurred_at'), ['occurred_at'],
                              unique=False)
    for statement in (POSTGRES_UP if _dialect() == "postgresql" else SQLITE_UP):
        op.execute(statement)


def downgrade() -> None:
    # Events written since 0005 hash their entity, before/after and reason: dropping those
    # columns would leave events that no longer verify. Refuse rather than break the chain.
    used = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM audit_event WHERE "
        + " OR ".join(f'"{c}" IS NOT NULL' for c in NEW_COLUMNS))).scalar()
    if used:
        raise RuntimeError(
            f"cannot downgrade below 0005: {used} audit events use the columns added in 0005 "
            "(entity_type, entity_id, before, after, reason) and their hashes cover them, so "
            "dropping the columns would break the audit chain. Restore a backup taken before "
            "the upgrade instead.")
    for statement in (POSTGRES_DOWN if _dialect() == "postgresql" else SQLITE_DOWN):
        op.execute(statement)
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_audit_event_actor_id'))
        batch_op.drop_index('ix_audit_event_entity')
        batch_op.drop_column('reason')
        batch_op.drop_column('after')
        batch_op.drop_column('before')
        batch_op.drop_column('entity_id')
        batch_op.drop_column('entity_type')


def _dialect() -> str:
    return str(op.get_bind().dialect.name)
