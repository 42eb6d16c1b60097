"""SSCC-18, the Serial Shipping Container Code on every carton and pallet.

18 digits: an extension digit (0-9, the packer's choice), the GS1 company
prefix (7-10 digits), a serial reference filling the rest, and a mod-10 check
digit (weights 3, 1, 3, ... from the rightmost of the 17 data digits;
check = (10 - sum mod 10) mod 10). The serial comes from a counter that never
goes back (lua/ship.lua's P:sscc), so no two containers share a code.

lua/ship.lua computes the same check digit when it assigns the codes; this
module is the reference the tests hold it to, and what labels and readers use.
"""

from __future__ import annotations

#: Application identifier of an SSCC in GS1-128 (and in the 856's MAN*GM).
AI = "00"


class SsccError(ValueError):
    """Raised for a malformed SSCC, company prefix or serial out of range."""


def check_digit(data17: str) -> str:
    if len(data17) != 17 or not data17.isdigit():
        raise SsccError(f"an SSCC has 17 data digits, not {data17!r}")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(data17)))
    return str((10 - total % 10) % 10)


def serial_digits(company_prefix: str) -> int:
    """How many digits the serial reference has after this company prefix."""
    if not company_prefix.isdigit() or not 7 <= len(company_prefix) <= 10:
        raise SsccError(f"a GS1 company prefix has 7 to 10 digits, not {company_prefix!r}")
    return 16 - len(company_prefix)


def build(extension: int, company_prefix: str, serial: int) -> str:
    if not 0 <= extension <= 9:
        raise SsccError("the extension digit is 0-9")
    width = serial_digits(company_prefix)
    if not 0 <= serial < 10**width:
        raise SsccError(f"serial {serial} does not fit in {width} digits after prefix {company_prefix}")
    data = f"{extension}{company_prefix}{serial:0{width}d}"
    return data + check_digit(data)


def is_valid(code: str) -> bool:
    return len(code) == 18 and code.isdigit() and check_digit(code[:17]) == code[17]


def from_man(value: str) -> str:
    """The SSCC in an 856 MAN*GM value (with or without the AI 00 in front)."""
    value = value.strip()
    if len(value) == 20 and value.startswith(AI):
        value = value[2:]
    if not is_valid(value):
        raise SsccError(f"{value!r} is not a valid SSCC-18")
    return value


def gs1_128(code: str) -> str:
    """Human-readable GS1-128 text of an SSCC: (00) followed by the 18 digits."""
    return f"({AI}) {code}"
