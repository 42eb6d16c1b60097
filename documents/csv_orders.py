"""Wholesale orders in a CSV: one row per line, the order's columns repeated.

Rows with the same customer and PO number are one order (they need not be
next to each other). A line names its item by SKU, UPC or the buyer's item
number (resolved later against the SKUs and the customer's cross-reference).
Every bad value is reported with its line and column; an order with any bad
row is left out whole (all-or-nothing per order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from documents.tabular import (RowError, Table, decode_text, parse_date, parse_money, parse_quantity,
                               read_table)

ALIASES: dict[str, tuple[str, ...]] = {
    "customer": ("customer_id", "customer id", "account", "account number", "customer number",
                 "customer name", "sold to", "buyer"),
    "po_number": ("po", "po number", "po #", "customer po", "customer po number", "purchase order",
                  "purchase order number", "ponumber", "po no"),
    "sku": ("item", "item number", "item #", "sku", "product code", "part number", "vendor part number",
            "style", "variant sku", "item code", "product sku"),
    "upc": ("upc", "gtin", "ean", "barcode", "upc code"),
    "buyer_item": ("buyer item", "buyer item number", "customer item", "customer item number",
                   "retailer item", "retailer sku", "their item"),
    "quantity": ("qty", "quantity", "qty ordered", "order qty", "quantity ordered", "units", "order quantity"),
    "unit_price": ("price", "unit price", "unit cost", "cost", "each", "price each", "wholesale price"),
    "currency": ("currency", "currency code"),
    "ship_to_name": ("ship to", "ship to name", "ship-to", "ship to company", "store name"),
    "ship_to_store": ("store", "store number", "store #", "ship to store", "location number"),
    "ship_to_address1": ("ship to address", "ship to address 1", "ship to address1", "address", "address 1"),
    "ship_to_address2": ("ship to address 2", "ship to address2", "address 2"),
    "ship_to_city": ("ship to city", "city"),
    "ship_to_province": ("ship to state", "ship to province", "state", "province"),
    "ship_to_zip": ("ship to zip", "ship to postal code", "zip", "postal code", "zip code"),
    "ship_to_country": ("ship to country", "country", "country code"),
    "ship_date": ("ship date", "requested ship date", "ship by", "ship not before"),
    "cancel_date": ("cancel date", "cancel by", "do not ship after", "ship no later than"),
    "notes": ("notes", "comments", "instructions", "memo"),
}
ORDER_COLUMNS = ("currency", "ship_to_name", "ship_to_store", "ship_to_address1", "ship_to_address2",
                 "ship_to_city", "ship_to_province", "ship_to_zip", "ship_to_country", "ship_date",
                 "cancel_date", "notes")
REQUIRED = [("po_number",), ("sku", "upc", "buyer_item"), ("quantity",)]


@dataclass
class CsvLine:
    line: int
    quantity: int
    sku: str = ""
    upc: str = ""
    buyer_item: str = ""
    unit_price: str | None = None

    @property
    def item(self) -> str:
        return self.sku or self.upc or self.buyer_item


@dataclass
class CsvOrder:
    customer: str
    po_number: str
    first_line: int
    lines: list[CsvLine] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    #: Lines of the file that belong to this order (bad ones too).
    rows: list[int] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def ship_to(self) -> dict | None:
        f = self.fields
        out = {"name": f.get("ship_to_name"), "address1": f.get("ship_to_address1"),
               "address2": f.get("ship_to_address2"), "city": f.get("ship_to_city"),
               "province": f.get("ship_to_province"), "zip": f.get("ship_to_zip"),
               "country_code": (f.get("ship_to_country") or "")[:2].upper() or None,
               "location_id": f.get("ship_to_store")}
        out = {k: v for k, v in out.items() if v}
        if out.get("location_id"):
            out["location_qualifier"] = "92"
        return out or None


@dataclass
class CsvOrders:
    orders: list[CsvOrder]
    #: Errors of the file as a whole (encoding, missing column).
    errors: list[RowError]
    #: canonical column -> the header as the file names it
    columns: dict[str, str]
    rows: int = 0

    @property
    def row_errors(self) -> list[RowError]:
        return sorted([*self.errors, *(err for o in self.orders for err in o.errors)],
                      key=lambda r: (r.line, r.column))


def parse(data: bytes, *, encoding: str = "utf-8") -> CsvOrders:
    from documents.tabular import TabularError

    try:
        table = read_table(decode_text(data, encoding), ALIASES, REQUIRED)
    except TabularError as exc:
        return CsvOrders([], [exc.error], {})
    orders: dict[tuple[str, str], CsvOrder] = {}
    loose: list[RowError] = []
    for line, row in table.rows:
        po = table.value(row, "po_number")
        customer = table.value(row, "customer")
        if not po:
            loose.append(RowError(line, table.name("po_number"), "no PO number"))
            continue
        if len(po) > 128:
            loose.append(RowError(line, table.name("po_number"), "PO number longer than 128 characters"))
            continue
        key = (customer.lower(), po.lower())
        order = orders.get(key)
        if order is None:
            order = orders[key] = CsvOrder(customer, po, line)
        order.rows.append(line)
        _row(table, order, line, row)
    return CsvOrders(list(orders.values()), loose, {c: table.header[i] for c, i in table.columns.items()},
                     len(table.rows))


def _row(table: Table, order: CsvOrder, line: int, row: list[str]) -> None:
    errors = order.errors
    qty_text = table.value(row, "quantity")
    qty = parse_quantity(qty_text)
    if qty is None:
        errors.append(RowError(line, table.name("quantity"),
                               f"quantity {qty_text!r} is not a whole number from 1 to 1000000000"
                               if qty_text else "no quantity"))
    price_text = table.value(row, "unit_price")
    price = parse_money(price_text) if price_text else None
    if price_text and price is None:
        errors.append(RowError(line, table.name("unit_price"), f"price {price_text!r} is not a number"))
    item = CsvLine(line, qty or 0, sku=table.value(row, "sku"), upc=table.value(row, "upc"),
                   buyer_item=table.value(row, "buyer_item"), unit_price=price)
    if not item.item:
        errors.append(RowError(line, table.name("sku"), "no SKU, UPC or buyer item number"))
    for column in ORDER_COLUMNS:
        value = table.value(row, column)
        if column in ("ship_date", "cancel_date") and value:
            parsed = parse_date(value)
            if parsed is None:
                errors.append(RowError(line, table.name(column), f"{value!r} is not a date (YYYY-MM-DD)"))
                continue
            value = parsed.isoformat()
        if column == "currency" and value and not (len(value) == 3 and value.isalpha()):
            errors.append(RowError(line, table.name(column), f"{value!r} is not an ISO 4217 currency"))
            continue
        if not value:
            continue
        if len(value) > (2000 if column == "notes" else 255):
            errors.append(RowError(line, table.name(column), "too long"))
            continue
        first = order.fields.setdefault(column, value.upper() if column == "currency" else value)
        if first != (value.upper() if column == "currency" else value):
            errors.append(RowError(line, table.name(column),
                                   f"{value!r} differs from {first!r} on line {order.first_line} of "
                                   f"the same PO"))
    if qty is not None and item.item:
        order.lines.append(item)
