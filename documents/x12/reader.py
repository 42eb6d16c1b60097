"""Reads X12 interchanges: delimiters, segments and the ISA/GS/ST envelopes.

The delimiters come from the ISA segment itself (never assumed): the element
separator is the character after ``ISA``, the component separator is ISA16
and the segment terminator the character after it (a conforming ISA is 106
characters, so these are positions 3, 104 and 105; an ISA whose fixed-width
fields were padded wrongly is read by counting its 16 separators instead).
ISA11 is a repetition separator only from ISA12 ``00402`` on, and only when
it is not a letter or digit (5010 files still send ``U``).

Between segments a byte-order mark, CR, LF, CRLF, spaces and indentation are
tolerated. Inside segments nothing is trimmed: element values are kept as
sent (``72712 `` stays ``72712 ``), and the mappings that interpret them
decide what to strip.

Errors come in two kinds. :class:`X12Error` is raised for what makes the
file unreadable as an interchange (no ISA, truncated, IEA counts or control
numbers wrong): nothing in it is acted on. Errors of a group or a
transaction set (GE/SE counts, control numbers that disagree, a missing
trailer) are recorded on that group or set, so the 997 can reject exactly
those and the others still go through.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Whitespace tolerated between segments.
_BETWEEN = " \t\r\n"
BOM = "\ufeff"


class X12Error(ValueError):
    """Raised when data cannot be read as X12 interchanges at all."""

    def __init__(self, message: str, *, segment: int | None = None, line: int | None = None):
        where = ""
        if segment is not None:
            where = f" (segment {segment}" + (f", line {line})" if line is not None else ")")
        super().__init__(message + where)
        self.detail = message
        self.segment = segment
        self.line = line


@dataclass(frozen=True)
class Delimiters:
    element: str
    component: str
    segment: str
    #: None before ISA12 00402, or when ISA11 is the standards identifier (U).
    repetition: str | None = None


@dataclass(frozen=True)
class Segment:
    """One segment: its id and elements as sent. ``elements[0]`` is the id, so
    ``seg[1]`` is the first element, as X12 numbers them."""

    elements: tuple[str, ...]
    #: 1-based position of the segment in the file.
    index: int
    #: 1-based line of the file where the segment starts.
    line: int
    component: str = ">"

    @property
    def id(self) -> str:
        return self.elements[0]

    def __getitem__(self, i: int) -> str:
        """Element ``i`` (1-based) as sent; "" when absent."""
        return self.elements[i] if 0 < i < len(self.elements) else ""

    def get(self, i: int) -> str:
        """Element ``i`` stripped of surrounding spaces (for ids, codes, numbers)."""
        return self[i].strip()

    def components(self, i: int) -> list[str]:
        return self[i].split(self.component)

    def __len__(self) -> int:
        return len(self.elements) - 1


@dataclass
class TransactionSet:
    id: str
    control: str
    #: Every segment from ST to SE inclusive (SE missing when ``errors`` says so).
    segments: list[Segment]
    #: AK5 syntax error codes found in the envelope: 2 trailer missing,
    #: 3 control numbers disagree, 4 segment count wrong.
    errors: list[str] = field(default_factory=list)
    #: Text for the same errors, for reports.
    notes: list[str] = field(default_factory=list)

    @property
    def body(self) -> list[Segment]:
        """The segments between ST and SE."""
        end = -1 if self.segments and self.segments[-1].id == "SE" else None
        return self.segments[1:end]

    @property
    def position(self) -> int:
        return self.segments[0].index


@dataclass
class Group:
    functional_id: str
    sender: str
    receiver: str
    date: str
    time: str
    control: str
    agency: str
    version: str
    sets: list[TransactionSet]
    header: Segment
    #: GE01 as declared (None when GE is missing).
    declared_sets: int | None = None
    #: AK9 error codes: 2 trailer missing, 4 control numbers disagree, 5 count wrong.
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Interchange:
    delimiters: Delimiters
    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    date: str
    time: str
    version: str
    control: str
    ack_requested: str
    usage: str
    groups: list[Group]

    @property
    def sender(self) -> tuple[str, str]:
        return self.sender_qualifier, self.sender_id

    @property
    def receiver(self) -> tuple[str, str]:
        return self.receiver_qualifier, self.receiver_id


def decode(data: bytes) -> str:
    """Bytes -> text: UTF-8 when it is, else Latin-1 (every byte maps; X12's
    character sets are ASCII plus, in extended sets, some Latin letters)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text[1:] if text.startswith(BOM) else text


def delimiters(text: str) -> Delimiters:
    """The delimiters of the ISA at the start of ``text``."""
    if not text.startswith("ISA") or len(text) < 106:
        raise X12Error("not an X12 interchange: it must start with a complete ISA segment")
    sep = text[3]
    if sep.isalnum() or sep in _BETWEEN:
        raise X12Error(f"ISA element separator {sep!r} is a letter, digit or space")
    if text[103] == sep:
        component, terminator = text[104], text[105]
        fields = text[4:103].split(sep)
    else:
        # an ISA with wrongly padded fields: count its 16 separators
        pos = 3
        for _ in range(15):
            pos = text.find(sep, pos + 1)
            if pos < 0:
                raise X12Error("the ISA segment is truncated")
        if pos + 2 >= len(text):
            raise X12Error("the ISA segment is truncated")
        component, terminator = text[pos + 1], text[pos + 2]
        fields = text[4:pos].split(sep)
    if len(fields) != 15:
        raise X12Error(f"the ISA segment has {len(fields) + 1} elements instead of 16")
    if component == sep or terminator in (sep, component):
        raise X12Error("the ISA's separators are not distinct")
    repetition = None
    isa11, isa12 = fields[10], fields[11].strip()
    if isa12.isdigit() and isa12 >= "00402" and len(isa11) == 1 and not isa11.isalnum() \
            and isa11 not in (sep, component, terminator, " "):
        repetition = isa11
    return Delimiters(sep, component, terminator, repetition)


def segments(text: str, d: Delimiters) -> list[Segment]:
    """Splits the text of one or more interchanges (same delimiters) into segments."""
    out: list[Segment] = []
    newline = "\n" if "\n" in text else "\r"
    line, scanned = 1, 0
    pos, n = 0, len(text)
    while pos < n:
        while pos < n and text[pos] in _BETWEEN and text[pos] != d.segment:
            pos += 1
        if pos >= n:
            break
        end = text.find(d.segment, pos)
        raw = text[pos:] if end < 0 else text[pos:end]
        line += text.count(newline, scanned, pos)
        scanned = pos
        if d.segment == "\n":
            raw = raw.rstrip("\r")  # CRLF files whose terminator is LF
        if raw:
            out.append(Segment(tuple(raw.split(d.element)), len(out) + 1, line, d.component))
        pos = n if end < 0 else end + 1
    return out


def read(data: bytes | str) -> list[Interchange]:
    """Every interchange in ``data`` (one file may hold several)."""
    text = decode(data) if isinstance(data, bytes) else data.removeprefix(BOM)
    text = text.lstrip(_BETWEEN)
    if not text:
        raise X12Error("the file is empty")
    d = delimiters(text)
    segs = segments(text, d)
    out: list[Interchange] = []
    i = 0
    while i < len(segs):
        interchange, i = _interchange(segs, i, d)
        out.append(interchange)
    return out


def _interchange(segs: list[Segment], i: int, d: Delimiters) -> tuple[Interchange, int]:
    isa = segs[i]
    if isa.id != "ISA":
        raise X12Error(f"expected ISA, found {isa.id}", segment=isa.index, line=isa.line)
    if len(isa) != 16:
        raise X12Error(f"ISA has {len(isa)} elements instead of 16", segment=isa.index, line=isa.line)
    icn = isa.get(13)
    groups: list[Group] = []
    i += 1
    while i < len(segs) and segs[i].id == "GS":
        group, i = _group(segs, i)
        groups.append(group)
    if i >= len(segs):
        raise X12Error(f"truncated: interchange {icn} has no IEA trailer")
    iea = segs[i]
    if iea.id == "TA1":
        raise X12Error("TA1 interchange acknowledgments are not read", segment=iea.index, line=iea.line)
    if iea.id != "IEA":
        raise X12Error(f"expected GS or IEA, found {iea.id}", segment=iea.index, line=iea.line)
    if iea.get(2) != icn:
        raise X12Error(f"IEA02 {iea.get(2)!r} does not match ISA13 {icn!r}", segment=iea.index, line=iea.line)
    if iea.get(1) != str(len(groups)) and _int(iea.get(1)) != len(groups):
        raise X12Error(f"IEA01 says {iea.get(1)!r} groups, the interchange has {len(groups)}",
                       segment=iea.index, line=iea.line)
    return Interchange(
        delimiters=d, sender_qualifier=isa.get(5), sender_id=isa.get(6),
        receiver_qualifier=isa.get(7), receiver_id=isa.get(8), date=isa.get(9), time=isa.get(10),
        version=isa.get(12), control=icn, ack_requested=isa.get(14), usage=isa.get(15), groups=groups,
    ), i + 1


def _group(segs: list[Segment], i: int) -> tuple[Group, int]:
    gs = segs[i]
    group = Group(functional_id=gs.get(1), sender=gs.get(2), receiver=gs.get(3), date=gs.get(4),
                  time=gs.get(5), control=gs.get(6), agency=gs.get(7), version=gs.get(8), sets=[],
                  header=gs)
    i += 1
    while i < len(segs) and segs[i].id == "ST":
        ts, i = _transaction_set(segs, i)
        group.sets.append(ts)
    if i >= len(segs):
        raise X12Error(f"truncated: group {group.control} has no GE trailer")
    ge = segs[i]
    if ge.id != "GE":
        # a group without its trailer: reject it, go on with what follows
        group.errors.append("2")
        group.notes.append(f"group {group.control} has no GE trailer (found {ge.id})")
        return group, i
    group.declared_sets = _int(ge.get(1))
    if ge.get(2) != group.control:
        group.errors.append("4")
        group.notes.append(f"GE02 {ge.get(2)!r} does not match GS06 {group.control!r}")
    if group.declared_sets != len(group.sets):
        group.errors.append("5")
        group.notes.append(f"GE01 says {ge.get(1)!r} transaction sets, the group has {len(group.sets)}")
    return group, i + 1


_ENVELOPE = {"ISA", "IEA", "GS", "GE", "ST"}


def _transaction_set(segs: list[Segment], i: int) -> tuple[TransactionSet, int]:
    st = segs[i]
    ts = TransactionSet(id=st.get(1), control=st.get(2), segments=[st])
    i += 1
    while i < len(segs) and segs[i].id not in _ENVELOPE and segs[i].id != "SE":
        ts.segments.append(segs[i])
        i += 1
    if i >= len(segs) or segs[i].id != "SE":
        ts.errors.append("2")
        ts.notes.append(f"transaction set {ts.id} {ts.control} has no SE trailer")
        return ts, i
    se = segs[i]
    ts.segments.append(se)
    if se.get(2) != ts.control:
        ts.errors.append("3")
        ts.notes.append(f"SE02 {se.get(2)!r} does not match ST02 {ts.control!r}")
    if _int(se.get(1)) != len(ts.segments):
        ts.errors.append("4")
        ts.notes.append(f"SE01 says {se.get(1)!r} segments, the set has {len(ts.segments)}")
    return ts, i + 1


def _int(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None
