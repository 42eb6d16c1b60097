"""Errors found inside a transaction set, in the shape a 997 reports them
(AK3 segment, AK4 element) and with a sentence for people."""

from __future__ import annotations

from dataclasses import dataclass, field

# AK304 segment syntax error codes
SEGMENT_HAS_ELEMENT_ERRORS = "8"
MANDATORY_SEGMENT_MISSING = "3"
UNRECOGNIZED_SEGMENT = "2"
# AK403 element syntax error codes
MANDATORY_ELEMENT_MISSING = "1"
INVALID_CHARACTER = "6"
INVALID_CODE_VALUE = "7"
INVALID_DATE = "8"
# AK502 transaction set syntax error code
SEGMENTS_IN_ERROR = "5"


@dataclass(frozen=True)
class ElementError:
    #: AK401: position of the element in its segment.
    position: int
    #: AK402: the data element's reference number in the X12 dictionary.
    reference: str
    #: AK403: what is wrong (MANDATORY_ELEMENT_MISSING, INVALID_CHARACTER, ...).
    code: str
    #: AK404: a copy of the bad value (may be empty).
    value: str = ""


@dataclass
class SegmentError:
    segment_id: str
    #: AK302: position of the segment in the transaction set (ST is 1).
    position: int
    #: What people read in reports.
    message: str
    #: AK303: the loop the segment opens or sits in ("PO1"), may be empty.
    loop: str = ""
    code: str = SEGMENT_HAS_ELEMENT_ERRORS
    elements: list[ElementError] = field(default_factory=list)
    #: 1-based line in the file, for reports.
    line: int | None = None
