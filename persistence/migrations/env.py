"""Alembic environment: the URL comes from persistence.db.migrate (never from
an ini file or the environment at import)."""

from alembic import context
from sqlalchemy import create_engine, pool

from persistence.models import Base

config = context.config


def include_object(obj, name, type_, reflected, compare_to):
    # views are created by hand in the migrations
    return not (type_ == "table" and obj.info.get("is_view"))


def run() -> None:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          include_object=include_object)
        with context.begin_transaction():
            # one migrator at a time (several `serve` or `migrate` may start at once)
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7413220001)")
            context.run_migrations()


run()
