"""Writes X12 interchanges: ISA/GS/ST envelopes around transaction sets.

Control numbers are passed in (they come from counters that never go back,
persistence/edi.py); the writer never invents one. It counts what the
trailers count (SE01 segments, GE01 sets, IEA01 groups) itself, so those
are right by construction. Values that would contain a delimiter are
refused: a name is cleaned by the mapping before it gets here
(:func:`text`), an identifier is never silently changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

ELEMENT = "*"
COMPONENT = ">"
SEGMENT = "~"
#: ISA11 in 5010 (repetition separator); 4010 sends the standards id U.
REPETITION = "^"
_DELIMS = (ELEMENT, COMPONENT, SEGMENT, REPETITION)

Seg = list[str]


class X12WriteError(ValueError):
    """Raised when a value cannot be written (it holds a delimiter, or an ISA
    field is too long)."""


def text(value: object, max_len: int = 60) -> str:
    """Free text (names, descriptions) made safe: delimiters and control
    characters become spaces, trimmed to ``max_len``."""
    out = "".join(" " if c in _DELIMS or ord(c) < 32 else c for c in str(value or ""))
    return " ".join(out.split())[:max_len]


@dataclass(frozen=True)
class Envelope:
    """Who sends to whom, in which version."""

    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    gs_sender: str
    gs_receiver: str
    #: GS08, e.g. 004010, 004010VICS, 005010
    version: str = "004010"
    #: ISA15: P production, T test
    usage: str = "P"

    @property
    def isa_version(self) -> str:
        return "00501" if self.version.startswith("005") else "00401"


@dataclass
class TransactionSetOut:
    id: str
    #: ST02 / SE02
    control: str
    #: The segments between ST and SE.
    segments: list[Seg]


@dataclass
class GroupOut:
    #: GS01: FA (997), PR (855), SH (856), IN (810)
    functional_id: str
    control: int
    sets: list[TransactionSetOut] = field(default_factory=list)


def _check(seg: Seg) -> None:
    for value in seg[1:]:
        if any(d in value for d in _DELIMS):
            raise X12WriteError(f"{seg[0]}: value {value!r} holds an X12 delimiter")
        if any(ord(c) < 32 for c in value):
            raise X12WriteError(f"{seg[0]}: value {value!r} holds a control character")


def _segment(seg: Seg) -> str:
    _check(seg)
    parts = list(seg)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()  # no trailing empty elements
    return ELEMENT.join(parts) + SEGMENT


def _pad(value: str, width: int, what: str) -> str:
    if len(value) > width:
        raise X12WriteError(f"{what} {value!r} is longer than {width} characters")
    return value.ljust(width)


def control_number(n: int, width: int = 9) -> str:
    if not 0 < n < 10**width:
        raise X12WriteError(f"control number {n} does not fit in {width} digits")
    return str(n).zfill(width)


def set_control(n: int) -> str:
    """ST02: at least 4 digits."""
    return control_number(n, 9).lstrip("0").zfill(4)


def interchange(env: Envelope, control: int, groups: list[GroupOut], at: datetime,
                *, newline: bool = True) -> bytes:
    """One interchange holding ``groups``; ``control`` is ISA13 (and IEA02)."""
    icn = control_number(control)
    lines = [ELEMENT.join([
        "ISA", "00", " " * 10, "00", " " * 10,
        _pad(env.sender_qualifier, 2, "ISA05"), _pad(env.sender_id, 15, "ISA06"),
        _pad(env.receiver_qualifier, 2, "ISA07"), _pad(env.receiver_id, 15, "ISA08"),
        at.strftime("%y%m%d"), at.strftime("%H%M"),
        REPETITION if env.isa_version >= "00402" else "U", env.isa_version, icn, "0", env.usage,
        COMPONENT]) + SEGMENT]
    for g in groups:
        gcn = str(g.control)
        if not 0 < g.control < 10**9:
            raise X12WriteError(f"group control number {g.control} out of range")
        lines.append(_segment(["GS", g.functional_id, env.gs_sender, env.gs_receiver,
                               at.strftime("%Y%m%d"), at.strftime("%H%M"), gcn, "X", env.version]))
        for ts in g.sets:
            body = [["ST", ts.id, ts.control], *ts.segments]
            lines.extend(_segment(s) for s in body)
            lines.append(_segment(["SE", str(len(body) + 1), ts.control]))
        lines.append(_segment(["GE", str(len(g.sets)), gcn]))
    lines.append(_segment(["IEA", str(len(groups)), icn]))
    return ("\n" if newline else "").join(lines).encode("ascii", "replace") + (b"\n" if newline else b"")


def date8(at: datetime) -> str:
    return at.strftime("%Y%m%d")


def time4(at: datetime) -> str:
    return at.strftime("%H%M")
