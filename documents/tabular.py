"""Spreadsheets saved as CSV: decoding, the delimiter, header aliases, and
errors that name the line and the column.

Buyers export from whatever they use, so a column is found by any of its
common names ("PO", "PO #", "Customer PO Number" are all the PO number);
names are compared without case, spaces or punctuation. The text must be
UTF-8 (a byte-order mark is fine) unless the caller names another encoding:
a file that is not is reported with the line and position of the first bad
byte, never guessed at.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

#: Most rows one CSV import reads.
MAX_ROWS = 200_000


@dataclass(frozen=True)
class RowError:
    #: 1-based line of the file (the header is line 1).
    line: int
    #: The column as the file names it ("" for the whole row or file).
    column: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.message}"


class TabularError(ValueError):
    """Raised when the file as a whole cannot be read (encoding, no header)."""

    def __init__(self, error: RowError):
        super().__init__(str(error))
        self.error = error


def normalize(name: str) -> str:
    name = name.strip().lower().replace("#", " number ").replace("no.", " number ")
    return re.sub(r"[^a-z0-9]+", "", name)


def decode_text(data: bytes, encoding: str = "utf-8") -> str:
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise TabularError(RowError(
            line, "", f"the file is not {encoding}: byte 0x{data[exc.start]:02X} at position {col} "
                      f"(save it as UTF-8, or name its encoding)")) from exc
    except LookupError as exc:
        raise TabularError(RowError(0, "", f"unknown encoding {encoding!r}")) from exc


def _dialect(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t", "|")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


@dataclass
class Table:
    header: list[str]
    #: canonical name -> index of the column in the file
    columns: dict[str, int]
    rows: list[tuple[int, list[str]]]

    def name(self, canonical: str) -> str:
        return self.header[self.columns[canonical]] if canonical in self.columns else canonical

    def value(self, row: list[str], canonical: str) -> str:
        i = self.columns.get(canonical)
        return row[i].strip() if i is not None and i < len(row) else ""


def read_table(text: str, aliases: dict[str, tuple[str, ...]], required: list[tuple[str, ...]]) -> Table:
    """Reads the rows and finds the columns. ``required`` lists groups of
    canonical names of which at least one must be present."""
    if not text.strip():
        raise TabularError(RowError(1, "", "the file is empty"))
    first = text.splitlines()[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_dialect(first))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise TabularError(RowError(1, "", f"unreadable header: {exc}")) from exc
    lookup: dict[str, str] = {}
    for canonical, names in aliases.items():
        for n in (canonical, *names):
            lookup.setdefault(normalize(n), canonical)
    columns: dict[str, int] = {}
    for i, raw in enumerate(header):
        canonical = lookup.get(normalize(raw))
        if canonical is not None and canonical not in columns:
            columns[canonical] = i
    for group in required:
        if not any(c in columns for c in group):
            looked = ", ".join(repr(n) for c in group for n in (c, *aliases.get(c, ()))[:6])
            raise TabularError(RowError(1, group[0], f"missing column {group[0]!r} (looked for {looked})"))
    rows = []
    try:
        for row in _rows(reader):
            rows.append(row)
            if len(rows) > MAX_ROWS:
                raise TabularError(RowError(row[0], "", f"more than {MAX_ROWS} rows"))
    except csv.Error as exc:
        raise TabularError(RowError(reader.line_num, "", f"unreadable row: {exc}")) from exc
    return Table(header, columns, rows)


def _rows(reader) -> Iterator[tuple[int, list[str]]]:
    start = reader.line_num + 1
    for row in reader:
        if any(cell.strip() for cell in row):
            yield start, row
        start = reader.line_num + 1


def parse_quantity(text: str) -> int | None:
    text = text.replace(",", "").strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value != value.to_integral_value() or not 1 <= value <= 10**9:
        return None
    return int(value)


def parse_money(text: str) -> str | None:
    """ "$1,234.50" -> "1234.50"; None when not a number with at most 4 decimals."""
    text = text.replace(",", "").replace("$", "").strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0 or value.as_tuple().exponent < -4 or value >= 10**12:
        return None
    return format(value, "f")


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y%m%d", "%m/%d/%y", "%d.%m.%Y")


def parse_date(text: str) -> date | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None
