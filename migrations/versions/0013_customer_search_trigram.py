"""customer name/code trigram indexes on PostgreSQL: the "contains" search (issue 10)

`GET /api/v1/customers?q=` matches `name LIKE '%q%' OR code LIKE '%q%'`, which no B-tree index
serves: at 100k customers PostgreSQL scanned the table (12.2 ms for a search, 1.9 ms for a
code); with pg_trgm GIN indexes a bitmap scan of both takes 2.2 ms and 0.27 ms. pg_trgm ships
with PostgreSQL (contrib) and is a trusted extension, so the database's owner may create it.
SQLite has no such index; its LIKE scan stays (about 8 ms at 100k customers).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 03:00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGRAM_INDEXES = {"ix_customer_name_trgm": "name", "ix_customer_code_trgm": "code"}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in TRIGRAM_INDEXES.items():
        op.create_index(name, "customer", [column], postgresql_using="gin",
                        postgresql_ops={column: "gin_trgm_ops"})


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in TRIGRAM_INDEXES:
        op.drop_index(name, table_name="customer")
    # the extension stays: other databases' objects may use it, and it holds no data
