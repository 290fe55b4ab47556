"""The Alembic migrations build exactly the schema the models declare, on both backends."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import models  # noqa: F401  (registers the tables)
from models.db import alembic_config, autogenerate_filter


def _schema_diff(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": False, "include_object": autogenerate_filter(conn.dialect.name)})
        return compare_metadata(context, SQLModel.metadata)


def test_migrations_match_models(engine):
    diff = _schema_diff(engine)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_downgrade_to_base_and_upgrade_again(db_url, engine):
    """Empty -> head (the fixture), head -> base leaves nothing behind, base -> head again
    builds the same schema as the models."""
    engine.dispose()
    cfg = alembic_config(db_url)
    command.downgrade(cfg, "base")
    with engine.connect() as conn:
        left = set(inspect(conn).get_table_names()) - {"alembic_version"}
        if conn.dialect.name == "postgresql":  # enum types the migrations created
            left |= {f"type {name}" for (name,) in conn.execute(text(
                "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = current_schema() AND t.typtype = 'e'"))}
    engine.dispose()
    assert left == set(), f"downgrade to base left {sorted(left)}"
    command.upgrade(cfg, "head")
    diff = _schema_diff(engine)
    assert diff == [], f"after downgrade and upgrade, models and schema differ: {diff}"
