"""997 functional acknowledgments: one per received group.

Per transaction set (AK2 ... AK5): ``A`` accepted, ``E`` accepted with errors
(bad lines were reported and left out, the rest goes on), ``R`` rejected
(an envelope error, or an error that rejects the whole document), with the
segment at fault (AK3) and the element (AK4). Per group (AK9): ``A``, ``E``,
``P`` (partially accepted: some sets rejected) or ``R`` (every set
rejected, or the group's own trailer is wrong), with the counts of sets
included, received and accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from documents.x12 import errors as e
from documents.x12.reader import Group, TransactionSet
from documents.x12.writer import Seg


@dataclass
class SetAck:
    id: str
    control: str
    status: str
    #: AK502.. codes
    codes: list[str] = field(default_factory=list)
    errors: list[e.SegmentError] = field(default_factory=list)


@dataclass
class GroupAck:
    functional_id: str
    control: str
    version: str
    status: str
    included: int
    received: int
    accepted: int
    codes: list[str] = field(default_factory=list)
    sets: list[SetAck] = field(default_factory=list)


def acknowledge_set(ts: TransactionSet, rejecting: list[e.SegmentError],
                    reported: list[e.SegmentError]) -> SetAck:
    """The AK2 loop of one set: ``rejecting`` errors reject it, ``reported``
    ones (bad lines left out) make it accepted with errors."""
    if ts.errors or rejecting:
        codes = list(ts.errors) or [e.SEGMENTS_IN_ERROR]
        return SetAck(ts.id, ts.control, "R", codes, [*rejecting, *reported])
    if reported:
        return SetAck(ts.id, ts.control, "E", [e.SEGMENTS_IN_ERROR], list(reported))
    return SetAck(ts.id, ts.control, "A")


def acknowledge_group(group: Group, sets: list[SetAck]) -> GroupAck:
    accepted = 0 if group.errors else sum(1 for s in sets if s.status in ("A", "E"))
    if group.errors or accepted == 0:
        status = "R"
    elif accepted < len(sets):
        status = "P"
    elif any(s.status == "E" for s in sets):
        status = "E"
    else:
        status = "A"
    included = group.declared_sets if group.declared_sets is not None else len(group.sets)
    return GroupAck(group.functional_id, group.control, group.version, status, included,
                    len(group.sets), accepted, list(group.errors), sets)


def segments(ack: GroupAck) -> list[Seg]:
    """The body of a 997 (between ST and SE) for one group."""
    ak1 = ["AK1", ack.functional_id, ack.control]
    if ack.version.startswith("005"):
        ak1.append(ack.version)
    out: list[Seg] = [ak1]
    for s in ack.sets:
        out.append(["AK2", s.id, s.control])
        for err in s.errors:
            out.append(["AK3", err.segment_id, str(err.position), err.loop, err.code])
            for el in err.elements[:99]:
                out.append(["AK4", str(el.position), el.reference, el.code, _copy(el.value)])
        out.append(["AK5", s.status, *s.codes[:5]])
    out.append(["AK9", ack.status, str(ack.included), str(ack.received), str(ack.accepted),
                *ack.codes[:5]])
    return out


def _copy(value: str) -> str:
    """AK404 is a copy of the bad value, minus anything that would break the 997."""
    from documents.x12.writer import text

    return text(value, 99)


def parse(ts: TransactionSet) -> list[GroupAck]:
    """Reads a 997 (ours or a partner's) back into acknowledgments."""
    out: list[GroupAck] = []
    current: SetAck | None = None
    group: GroupAck | None = None
    for seg in ts.body:
        if seg.id == "AK1":
            group = GroupAck(seg.get(1), seg.get(2), seg.get(3), "", 0, 0, 0)
            out.append(group)
        elif seg.id == "AK2" and group is not None:
            current = SetAck(seg.get(1), seg.get(2), "")
            group.sets.append(current)
        elif seg.id == "AK3" and current is not None:
            current.errors.append(e.SegmentError(seg.get(1), int(seg.get(2) or 0), "", loop=seg.get(3),
                                                 code=seg.get(4)))
        elif seg.id == "AK4" and current is not None and current.errors:
            current.errors[-1].elements.append(
                e.ElementError(int(seg.get(1).split(">")[0] or 0), seg.get(2), seg.get(3), seg[4]))
        elif seg.id == "AK5" and current is not None:
            current.status = seg.get(1)
            current.codes = [seg.get(i) for i in range(2, 7) if seg.get(i)]
        elif seg.id == "AK9" and group is not None:
            group.status = seg.get(1)
            group.included, group.received, group.accepted = (int(seg.get(i) or 0) for i in (2, 3, 4))
            group.codes = [seg.get(i) for i in range(5, 10) if seg.get(i)]
    return out
