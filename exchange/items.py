"""Which SKU a buyer's line means: by our part number, by UPC, or through
the customer's cross-reference. Never guessed: a line whose identifier does
not resolve is reported unknown.

Qualifier kinds (X12 235):
- ``VN`` vendor's item, ``VP`` vendor's part, ``VC`` vendor's catalogue: our SKU;
- ``UP`` UPC, ``EN`` EAN, ``UK`` GTIN-14: the SKU whose ``upc`` it is;
- ``BP`` buyer's part, ``IN`` buyer's item, ``CB`` buyer's catalogue, ``SK``
  the buyer's SKU: the customer's cross-reference (edi_item_refs).
A partner's ``item_qualifiers`` lists those it uses, in order: the first one
present on a line decides. If it does not resolve, the line is unknown, even
when another id on the line might: two identifiers that disagree are for
staff to settle, not for a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VENDOR = ("VN", "VP", "VC")
PRODUCT = ("UP", "EN", "UK")
BUYER = ("BP", "IN", "CB", "SK")
DEFAULT_QUALIFIERS = [*VENDOR, *PRODUCT, *BUYER]
_SKU = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Lookups:
    """What the resolution may consult, read in bulk beforehand."""

    #: SKUs that exist (Redis) -> their details (case_pack, upc, name)
    skus: dict[str, dict]
    #: UPC (as sent, leading zeros kept) -> SKUs with it
    upcs: dict[str, list[str]]
    #: the customer's buyer item -> SKU
    refs: dict[str, str]


def _upc_forms(code: str) -> list[str]:
    """A UPC as stored may be 12 digits while an EAN/GTIN-14 carries zeros in front."""
    digits = code.strip()
    forms = [digits]
    if digits.isdigit():
        stripped = digits.lstrip("0")
        for width in (12, 13, 14):
            if len(stripped) <= width:
                forms.append(stripped.zfill(width))
    return list(dict.fromkeys(forms))


def resolve(pairs: list[tuple[str, str]], qualifiers: list[str], lookups: Lookups) -> tuple[str | None, str]:
    """(SKU or None, how it was found or why not)."""
    present = {q: v for q, v in reversed(pairs) if v}
    for q in qualifiers:
        value = present.get(q)
        if value is None:
            continue
        if q in VENDOR:
            if _SKU.match(value) and value in lookups.skus:
                return value, f"{q} {value}"
            return None, f"unknown part: {q} {value} is not a SKU"
        if q in PRODUCT:
            found = sorted({s for form in _upc_forms(value) for s in lookups.upcs.get(form, [])})
            if len(found) == 1 and found[0] in lookups.skus:
                return found[0], f"{q} {value}"
            if len(found) > 1:
                return None, f"{q} {value} is the UPC of several SKUs ({', '.join(found)})"
            return None, f"unknown part: no SKU has the UPC {value}"
        sku = lookups.refs.get(value)
        if sku is not None and sku in lookups.skus:
            return sku, f"{q} {value} (cross-reference)"
        return None, f"unknown part: {q} {value} is not in the customer's item cross-reference"
    named = ", ".join(q for q, _ in pairs) or "none"
    return None, f"no identifier the partner maps to a SKU (the line has {named}; the partner uses " \
                 f"{', '.join(qualifiers)})"


def upcs_wanted(pairs_list: list[list[tuple[str, str]]]) -> list[str]:
    return sorted({form for pairs in pairs_list for q, v in pairs if q in PRODUCT and v for form in _upc_forms(v)})


def buyer_items_wanted(pairs_list: list[list[tuple[str, str]]]) -> list[str]:
    return sorted({v for pairs in pairs_list for q, v in pairs if q in BUYER and v})


def vendor_items_wanted(pairs_list: list[list[tuple[str, str]]]) -> list[str]:
    return sorted({v for pairs in pairs_list for q, v in pairs if q in VENDOR and v and _SKU.match(v)})


def valid_sku(value: str) -> bool:
    return bool(_SKU.match(value))
