"""What an import did (or, in a dry run, would do): one report object for
the CLI, the API, the inbox's report files and the staff UI."""

from __future__ import annotations

import msgspec


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    message: str
    #: CSV: the file's line and the column as the file names it.
    line: int | None = None
    column: str | None = None
    #: X12: the segment id and its position in the transaction set.
    segment: str | None = None
    position: int | None = None


class LineOutcome(msgspec.Struct, kw_only=True, omit_defaults=True):
    #: The buyer's line (PO101) or the CSV line number.
    line: str
    item: str
    sku: str | None = None
    units: int = 0
    reserved: int = 0
    backordered: int = 0
    cancelled: int = 0
    #: 855 codes: IA, IB, IQ, IR
    ack: list[str] = []
    error: str | None = None


class OrderOutcome(msgspec.Struct, kw_only=True, omit_defaults=True):
    po_number: str
    customer_id: str | None = None
    order_id: str | None = None
    #: created | exists (imported before: nothing changed) | would_create |
    #: rejected (nothing placed) | refused (all_or_nothing without the stock)
    status: str
    lines: list[LineOutcome] = []
    problems: list[Problem] = []
    documents: list[str] = []


class CustomerOutcome(msgspec.Struct, kw_only=True, omit_defaults=True):
    line: int
    name: str
    customer_id: str | None = None
    #: created | updated | unchanged | would_create | would_update | rejected
    status: str
    problems: list[Problem] = []


class DocumentRef(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    interchange_control: int | None = None
    status: str


class ImportReport(msgspec.Struct, kw_only=True, omit_defaults=True):
    #: x12 | orders_csv | customers_csv
    kind: str
    dry_run: bool = False
    #: False when the file as a whole was refused (nothing was done).
    ok: bool = True
    source: str | None = None
    problems: list[Problem] = []
    orders: list[OrderOutcome] = []
    customers: list[CustomerOutcome] = []
    documents: list[DocumentRef] = []
    #: X12 group acknowledgments: [{group, status, accepted, received}]
    groups: list[dict] = []
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.orders:
            out[o.status] = out.get(o.status, 0) + 1
        for c in self.customers:
            out[c.status] = out.get(c.status, 0) + 1
        return out

    def summary(self) -> str:
        what = "customers" if self.kind == "customers_csv" else "orders"
        counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(self.counts().items())) or f"no {what}"
        bad = len(self.problems) + sum(len(o.problems) for o in self.orders) + \
            sum(len(c.problems) for c in self.customers)
        head = "dry run: " if self.dry_run else ""
        tail = f"; {len(self.documents)} document(s) recorded" if self.documents else ""
        refused = "" if self.ok else "file refused: "
        return f"{head}{refused}{counts}; {bad} problem(s){tail} ({self.seconds:.2f} s)"

    def to_json(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self), indent=2)
