"""The Alembic migrations build exactly the schema the models describe (a
model changed without its migration, or the other way round, fails here)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from persistence.models import Base


def test_the_migrated_schema_matches_the_models(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    # the reservations view is created by SQL in a migration, not by the models
    diff = [d for d in diff if not (d[0] == "add_table" and d[1].name == "reservations")]
    assert diff == [], diff
