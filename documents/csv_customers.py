"""Wholesale customers in a CSV: one row per customer, with one wholesale
profile (terms, backorder policy, ship-to, and the EDI partner options).

A customer is keyed by its account number, or by its name when the file
has none, so importing the same file again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from documents.tabular import RowError, TabularError, decode_text, read_table

ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("customer", "customer name", "company", "company name", "account name", "retailer"),
    "account": ("account number", "account #", "customer number", "customer #", "customer code", "acct"),
    "email": ("email", "e-mail", "email address"),
    "phone": ("phone", "telephone", "phone number"),
    "payment_terms": ("terms", "payment terms", "credit terms"),
    "backorder_policy": ("backorder policy", "backorders", "policy"),
    "ship_to_name": ("ship to", "ship to name"),
    "ship_to_address1": ("ship to address", "address", "address 1", "address1"),
    "ship_to_address2": ("address 2", "address2"),
    "ship_to_city": ("city", "ship to city"),
    "ship_to_province": ("state", "province", "ship to state"),
    "ship_to_zip": ("zip", "postal code", "zip code", "ship to zip"),
    "ship_to_country": ("country", "country code"),
    "isa_qualifier": ("isa qualifier", "edi qualifier", "isa id qualifier", "interchange qualifier"),
    "isa_id": ("isa id", "edi id", "interchange id", "isa sender id"),
    "gs_id": ("gs id", "application id", "gs sender id", "group id"),
    "item_qualifiers": ("item qualifiers", "item qualifier", "sku qualifier", "id qualifier"),
    "send_855": ("send 855", "855"),
    "send_856": ("send 856", "856", "asn"),
    "send_810": ("send 810", "810", "edi invoice"),
}
REQUIRED = [("name",)]

TERMS = {"prepaid": "prepaid", "cia": "prepaid", "cod": "prepaid", "net15": "net_15", "net30": "net_30",
         "net60": "net_60", "net90": "net_90", "n15": "net_15", "n30": "net_30", "n60": "net_60",
         "n90": "net_90"}
POLICIES = ("backorder", "ship_complete", "cancel_remainder", "all_or_nothing")
QUALIFIERS = ("VN", "VP", "VC", "SK", "UP", "EN", "UK", "BP", "IN", "CB")
_YES = {"1", "yes", "y", "true", "x"}
_NO = {"0", "no", "n", "false", ""}


@dataclass
class CsvCustomer:
    line: int
    name: str
    account: str = ""
    email: str | None = None
    phone: str | None = None
    profile: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return (self.account or self.name).strip().lower()


@dataclass
class CsvCustomers:
    customers: list[CsvCustomer]
    errors: list[RowError]
    rows: int = 0


def parse(data: bytes, *, encoding: str = "utf-8") -> CsvCustomers:
    try:
        table = read_table(decode_text(data, encoding), ALIASES, REQUIRED)
    except TabularError as exc:
        return CsvCustomers([], [exc.error])
    out: list[CsvCustomer] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for line, row in table.rows:
        v = lambda c: table.value(row, c)  # noqa: E731
        bad: list[RowError] = []
        name = v("name")
        if not name or len(name) > 255:
            bad.append(RowError(line, table.name("name"), "no name" if not name else "name too long"))
        profile: dict = {"channel": "wholesale"}
        if v("payment_terms"):
            terms = TERMS.get(v("payment_terms").lower().replace(" ", "").replace("_", ""))
            if terms is None:
                bad.append(RowError(line, table.name("payment_terms"),
                                    f"terms {v('payment_terms')!r} are not prepaid or net 15/30/60/90"))
            profile["payment_terms"] = terms
        if v("backorder_policy"):
            policy = v("backorder_policy").lower().replace(" ", "_")
            if policy not in POLICIES:
                bad.append(RowError(line, table.name("backorder_policy"),
                                    f"policy {v('backorder_policy')!r} is not one of {', '.join(POLICIES)}"))
            profile["backorder_policy"] = policy
        ship_to = {k: v(f"ship_to_{k}") for k in ("name", "address1", "address2", "city", "province", "zip")}
        if v("ship_to_country"):
            ship_to["country_code"] = v("ship_to_country")[:2].upper()
        ship_to = {k: x for k, x in ship_to.items() if x}
        if ship_to:
            profile["ship_to"] = ship_to
        edi = _edi(table, row, line, bad)
        if edi:
            profile["edi"] = edi
        customer = CsvCustomer(line, name, account=v("account"), email=v("email") or None,
                               phone=v("phone") or None, profile=profile)
        if not bad and customer.key in seen:
            bad.append(RowError(line, table.name("account" if customer.account else "name"),
                                f"the same customer as line {seen[customer.key]}"))
        if bad:
            errors.extend(bad)
            continue
        seen[customer.key] = line
        out.append(customer)
    return CsvCustomers(out, errors, len(table.rows))


def _edi(table, row, line: int, bad: list[RowError]) -> dict:
    v = lambda c: table.value(row, c)  # noqa: E731
    edi: dict = {}
    if v("isa_qualifier") or v("isa_id"):
        if not (v("isa_qualifier") and v("isa_id")):
            bad.append(RowError(line, table.name("isa_id" if v("isa_qualifier") else "isa_qualifier"),
                                "an EDI identity needs both the ISA qualifier and the ISA id"))
        elif len(v("isa_qualifier")) != 2 or len(v("isa_id")) > 15:
            bad.append(RowError(line, table.name("isa_id"), "ISA qualifier is 2 characters, ISA id at most 15"))
        else:
            edi["isa_qualifier"], edi["isa_id"] = v("isa_qualifier").upper(), v("isa_id")
    if v("gs_id"):
        edi["gs_id"] = v("gs_id")
    if v("item_qualifiers"):
        quals = [q.strip().upper() for q in v("item_qualifiers").replace(";", ",").replace(" ", ",").split(",")
                 if q.strip()]
        unknown = [q for q in quals if q not in QUALIFIERS]
        if unknown:
            bad.append(RowError(line, table.name("item_qualifiers"),
                                f"unknown item qualifier(s) {', '.join(unknown)} (use {', '.join(QUALIFIERS)})"))
        edi["item_qualifiers"] = quals
    for kind in ("855", "856", "810"):
        text = v(f"send_{kind}").lower()
        if text in _YES:
            edi[f"send_{kind}"] = True
        elif text in _NO:
            if text:
                edi[f"send_{kind}"] = False
        else:
            bad.append(RowError(line, table.name(f"send_{kind}"), f"{text!r} is not yes or no"))
    return edi
