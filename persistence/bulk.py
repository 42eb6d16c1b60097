"""Many rows in one statement: INSERT ... SELECT FROM unnest(arrays).

The outbox drainer writes thousands of rows a second. A multi-VALUES insert
is a new SQL text for every batch (SQLAlchemy compiles it and psycopg parses
it each time: more CPU than PostgreSQL's own work), and executemany pays a
round of Python per row. Passing one array per column keeps the SQL text
fixed (compiled and parsed once) and sends the values in bulk.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Sequence

import msgspec
from sqlalchemy import Connection, text

_json = msgspec.json.Encoder()


@cache
def _sql(table: str, columns: tuple[tuple[str, str], ...], conflict: str, update: tuple[str, ...],
         newer_only: bool, returning: str | None) -> Any:
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(
        f"CAST(:{name} AS {'text' if kind == 'jsonb' else kind}[])" for name, kind in columns)
    select = ", ".join(f"u.{name}::jsonb" if kind == "jsonb" else f"u.{name}" for name, kind in columns)
    sql = f"INSERT INTO {table} ({names}) SELECT {select} FROM unnest({arrays}) AS u({names})"
    if update:
        sets = ", ".join(f"{c} = excluded.{c}" for c in update)
        sql += f" ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
        if newer_only:
            sql += f" WHERE {table}.version < excluded.version"
    elif conflict:
        sql += f" ON CONFLICT ({conflict}) DO NOTHING"
    if returning:
        sql += f" RETURNING {returning}"
    return text(sql)


def insert_rows(conn: Connection, table: str, columns: Sequence[tuple[str, str]], rows: list[dict],
                *, conflict: str = "", update: Sequence[str] = (), newer_only: bool = False,
                returning: str | None = None) -> list:
    """Inserts ``rows`` (dicts keyed by column) in one statement. ``columns``
    are (name, PostgreSQL type); jsonb values may be Python objects. With
    ``update`` the conflicting rows are updated (only by a newer version when
    ``newer_only``), else ignored. Returns the ``returning`` column's values."""
    if not rows:
        return []
    params: dict[str, list] = {}
    for name, kind in columns:
        values = [row.get(name) for row in rows]
        if kind == "jsonb":
            values = [None if v is None else _json.encode(v).decode() for v in values]
        params[name] = values
    stmt = _sql(table, tuple(columns), conflict, tuple(update), newer_only, returning)
    result = conn.execute(stmt, params)
    return list(result.scalars()) if returning else []
