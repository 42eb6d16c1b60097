"""GS1-128 carton labels as PDF: one 4 x 6 inch page per carton.

The page follows the GS1 logistic label's zones, top to bottom: ship-from
and ship-to, carrier (with the bill of lading or tracking number), the PO
number and "carton n of N", then the SSCC as a GS1-128 barcode (AI 00, FNC1
first, drawn by python-barcode) with its human-readable text below. Bars are
0.5 mm wide modules and 32 mm tall (GS1: at least 0.495 mm and 31.75 mm for
an SSCC on a carton).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

from barcode import Gs1_128
from barcode.writer import SVGWriter
from fpdf import FPDF

from documents import sscc as sscc_codes

#: Page size, millimetres (4 x 6 inches, portrait).
PAGE_MM = (101.6, 152.4)
#: Barcode module width and bar height, millimetres.
MODULE_MM = 0.5
BAR_HEIGHT_MM = 32.0


@dataclass
class CartonLabel:
    sscc: str
    number: int
    of: int
    po_number: str = ""
    carrier: str = ""
    reference: str = ""
    ship_from: list[str] = field(default_factory=list)
    ship_to: list[str] = field(default_factory=list)
    contents: list[str] = field(default_factory=list)


def _latin1(text: object) -> str:
    # The built-in PDF fonts cover Latin-1 only; other characters print as '?'.
    return str(text if text is not None else "").encode("latin-1", "replace").decode("latin-1")


def barcode_svg(code: str) -> bytes:
    """The GS1-128 symbol of an SSCC (AI 00) as SVG."""
    if not sscc_codes.is_valid(code):
        raise sscc_codes.SsccError(f"{code!r} is not a valid SSCC-18")
    symbol = Gs1_128(sscc_codes.AI + code, writer=SVGWriter())
    buf = io.BytesIO()
    symbol.write(buf, options={"module_width": MODULE_MM, "module_height": BAR_HEIGHT_MM,
                               "write_text": False, "quiet_zone": 5.0})
    return buf.getvalue()


def carton_labels(labels: list[CartonLabel], *, title: str = "Carton labels") -> bytes:
    pdf = FPDF(unit="mm", format=PAGE_MM)
    pdf.set_title(title)
    pdf.set_auto_page_break(auto=False)
    pdf.set_margins(4, 4, 4)
    for label in labels:
        _page(pdf, label)
    return bytes(pdf.output())


def _block(pdf: FPDF, x: float, y: float, w: float, heading: str, lines: list[str]) -> None:
    pdf.set_xy(x, y)
    pdf.set_font("helvetica", "B", 7)
    pdf.cell(w, 3.5, heading, new_x="LEFT", new_y="NEXT")
    pdf.set_font("helvetica", "", 9)
    for line in lines[:6]:
        pdf.cell(w, 4, _latin1(line)[:40], new_x="LEFT", new_y="NEXT")


def _page(pdf: FPDF, label: CartonLabel) -> None:
    pdf.add_page()
    width = PAGE_MM[0] - 8
    _block(pdf, 4, 4, width / 2 - 1, "SHIP FROM", label.ship_from)
    _block(pdf, 4 + width / 2 + 1, 4, width / 2 - 1, "SHIP TO", label.ship_to)
    pdf.line(4, 33, 4 + width, 33)
    _block(pdf, 4, 35, width, "CARRIER", [label.carrier or "-", label.reference] if label.reference
           else [label.carrier or "-"])
    pdf.line(4, 49, 4 + width, 49)
    pdf.set_xy(4, 51)
    pdf.set_font("helvetica", "B", 7)
    pdf.cell(width, 3.5, "PO NUMBER", new_x="LEFT", new_y="NEXT")
    pdf.set_font("helvetica", "B", 14)
    pdf.cell(width, 7, _latin1(label.po_number or "-"), new_x="LEFT", new_y="NEXT")
    pdf.set_font("helvetica", "B", 11)
    pdf.cell(width, 6, f"CARTON {label.number} OF {label.of}", new_x="LEFT", new_y="NEXT")
    pdf.set_font("helvetica", "", 8)
    for line in label.contents[:4]:
        pdf.cell(width, 3.5, _latin1(line)[:60], new_x="LEFT", new_y="NEXT")
    pdf.line(4, 88, 4 + width, 88)
    pdf.set_xy(4, 90)
    pdf.set_font("helvetica", "B", 7)
    pdf.cell(width, 3.5, "SSCC", new_x="LEFT", new_y="NEXT")
    with warnings.catch_warnings():
        # python-barcode's SVG has width and height but no viewBox; fpdf2
        # says so and uses them, which is what is wanted
        warnings.simplefilter("ignore", UserWarning)
        pdf.image(io.BytesIO(barcode_svg(label.sscc)), x=4, y=95, w=width)
    pdf.set_xy(4, 140)
    pdf.set_font("helvetica", "B", 12)
    pdf.cell(width, 6, spaced(label.sscc), align="C")


def spaced(code: str) -> str:
    """(00) 0 0712161 000615680 2: AI, extension, prefix and serial, check digit."""
    return f"({sscc_codes.AI}) {code[0]} {code[1:17]} {code[17]}"
