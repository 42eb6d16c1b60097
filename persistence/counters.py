"""Counters that never go back (control numbers, invoice numbers), one row
per merchant and name in ``edi_counters``.

:func:`take` raises the counter and returns the numbers, in the caller's
transaction: the row stays locked until it commits, and a rolled-back
transaction gives its numbers back with everything that used them, so a
number is never on two recorded things. Numbers start at 1.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

#: Interchange (ISA13), group (GS06) and transaction set (ST02) control numbers.
INTERCHANGE = "isa"
GROUP = "gs"
TRANSACTION_SET = "st"
INVOICE = "invoice"

_TAKE = text("""
INSERT INTO edi_counters AS c (merchant_id, name, value) VALUES (:m, :name, :n)
ON CONFLICT (merchant_id, name) DO UPDATE SET value = c.value + excluded.value
RETURNING value
""")


def take(conn: Connection, merchant: str, name: str, n: int = 1) -> list[int]:
    """The next ``n`` numbers of the counter."""
    if n < 1:
        return []
    last = int(conn.execute(_TAKE, {"m": merchant, "name": name, "n": n}).scalar_one())
    return list(range(last - n + 1, last + 1))


def current(conn: Connection, merchant: str, name: str) -> int:
    value = conn.execute(text("SELECT value FROM edi_counters WHERE merchant_id = :m AND name = :name"),
                         {"m": merchant, "name": name}).scalar()
    return int(value or 0)
