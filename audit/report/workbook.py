"""The Excel workbook, streamed with openpyxl's write-only mode.

Rows go to disk as they are produced, so a Users sheet of 100,000 rows never sits in memory as cells.
(pandas 3.1 can open openpyxl in write-only mode through engine_kwargs, but it first buffers every
cell of a sheet as an openpyxl Cell before appending; measured on 100,000 x 16 cells: +280 MB, against
+0 MB streaming rows directly.) Consequences of write-only mode: column widths, freeze panes and page
setup are fixed before a sheet's first row, and each sheet is written top to bottom, once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from copy import copy
from datetime import date, datetime
from itertools import chain, islice

from openpyxl import Workbook
from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.styles import Alignment, Border, Font, NamedStyle, PatternFill, Side
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.properties import PageSetupProperties

from audit.report.cells import text_cell
from audit.report.tables import Column, Table
from audit.report.verdict import INCOMPLETE, NOT_SAFE, SAFE

SEVERITY_COLOURS = {  # fill, font
    "critical": ("8B0000", "FFFFFF"),
    "high": ("FF0000", "FFFFFF"),
    "medium": ("FFBF00", "000000"),
    "low": ("BFBFBF", "000000"),
}
VERDICT_COLOURS = {SAFE: "00B050", NOT_SAFE: "C00000", INCOMPLETE: "FFBF00"}
STATUS_COLOURS = {"ok": "C6EFCE", "partial": "FFEB9C", "failed": "FFC7CE"}
WIDTH_LIMITS = {
    "text": (8, 40),
    "id": (12, 38),
    "int": (8, 12),
    "time": (17, 17),
    "date": (11, 11),
    "severity": (10, 10),
    "wrap": (10, 60),
    "name": (12, 60),  # user principal names: guests' run to 50 characters and more
}
FONT = "Calibri"  # the workbook's default body font (openpyxl's); named styles say it too
TIME_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
SAMPLE_ROWS = 500  # rows looked at to size the columns of a sheet
CHARS_PER_WIDTH = 1.2  # body-text characters per unit of column width (a unit is one digit wide; Calibri 11)
# Paper: a unit of column width is 7 px at 96 dpi. US Letter landscape with 0.3 in side margins has 10.4 in
# across, 142 units at 100 %; A4 is wider. Printing at no less than 80 % keeps 11 pt text at 8.8 pt or more,
# so a page across holds 177 units; a wider sheet is printed more pages across instead of smaller.
PAGE_UNITS = 142
MIN_PRINT_SCALE = 0.8


def _styles() -> list[NamedStyle]:
    thin = Side(style="thin", color="808080")
    top = Alignment(vertical="top")
    indented = Alignment(horizontal="left", wrap_text=True, vertical="top", indent=1)
    styles = [
        NamedStyle(
            "etd_header",
            font=Font(name=FONT, size=11, bold=True),
            fill=PatternFill("solid", fgColor="D9E1F2"),
            border=Border(bottom=thin),
            alignment=Alignment(wrap_text=True, vertical="top"),
        ),
        NamedStyle(
            "etd_header_indent",
            font=Font(name=FONT, size=11, bold=True),
            fill=PatternFill("solid", fgColor="D9E1F2"),
            border=Border(bottom=thin),
            alignment=indented,
        ),
        NamedStyle("etd_wrap", alignment=Alignment(wrap_text=True, vertical="top")),
        NamedStyle("etd_wrap_indent", alignment=indented),
        NamedStyle("etd_time", number_format=TIME_FORMAT, alignment=top),
        NamedStyle("etd_date", number_format=DATE_FORMAT, alignment=top),
        NamedStyle("etd_title", font=Font(name=FONT, bold=True, size=16)),
        NamedStyle("etd_section", font=Font(name=FONT, bold=True, size=12, color="1F3864"), border=Border(bottom=thin)),
        NamedStyle("etd_label", font=Font(name=FONT, size=11, bold=True), alignment=top),
        NamedStyle("etd_value", alignment=Alignment(horizontal="left", vertical="top")),
        NamedStyle("etd_value_time", number_format=TIME_FORMAT, alignment=Alignment(horizontal="left", vertical="top")),
        NamedStyle("etd_top", alignment=top),
        NamedStyle("etd_number", alignment=Alignment(horizontal="right", vertical="top")),
    ]
    for name, (fill, font) in SEVERITY_COLOURS.items():
        styles.append(
            NamedStyle(
                f"etd_sev_{name}",
                font=Font(name=FONT, size=11, bold=True, color=font),
                fill=PatternFill("solid", fgColor=fill),
                alignment=top,
            )
        )
    for name, fill in VERDICT_COLOURS.items():
        styles.append(
            NamedStyle(
                f"etd_verdict_{name}",
                font=Font(name=FONT, bold=True, size=16, color="FFFFFF"),
                fill=PatternFill("solid", fgColor=fill),
                alignment=Alignment(horizontal="center", vertical="center"),
            )
        )
        styles.append(  # the same colours at body size, for a tenant's own verdict
            NamedStyle(
                f"etd_tenant_{name}",
                font=Font(name=FONT, size=11, bold=True, color="FFFFFF"),
                fill=PatternFill("solid", fgColor=fill),
                alignment=Alignment(horizontal="center", vertical="top"),
            )
        )
    for name, fill in STATUS_COLOURS.items():
        styles.append(NamedStyle(f"etd_status_{name}", fill=PatternFill("solid", fgColor=fill), alignment=top))
    for style in styles:  # a style without a font would show in the spreadsheet's own default font
        if style.font.name is None:
            style.font = Font(name=FONT, size=11)
    return styles


def new_workbook() -> Workbook:
    wb = Workbook(write_only=True)
    for style in _styles():
        wb.add_named_style(style)
    return wb


def _style_arrays(wb: Workbook) -> dict[str, StyleArray]:
    """Each named style as the array a cell carries: copying it is much cheaper than `cell.style = name`."""
    arrays = getattr(wb, "_etd_style_arrays", None)
    if arrays is None:
        arrays = {style.name: style.as_tuple() for style in wb._named_styles}
        wb._etd_style_arrays = arrays
    return arrays


def abandon(wb: Workbook) -> None:
    """Close the sheets of a workbook that will not be saved and delete their spooled rows."""
    for ws in wb.worksheets:
        try:
            ws.close()
        except Exception:  # best effort: the original error is what matters
            pass
        out = getattr(getattr(ws, "_writer", None), "out", None)
        if isinstance(out, str) and os.path.exists(out):
            os.remove(out)


def _styled(ws, value, style: str | None) -> Cell | object:
    if style is None or value is None:
        return value
    cell = WriteOnlyCell(ws, value=value)
    cell._style = copy(_style_arrays(ws.parent)[style])
    return cell


def _converter(ws, column: Column, width: float) -> Callable[[object], object]:
    kind = column.kind
    if kind in ("time", "date"):
        style = f"etd_{kind}"

        def moment(value):
            if isinstance(value, datetime | date):
                return _styled(ws, value, style)
            return text_cell(value)  # an unreadable time stays visible as text

        return moment
    if kind == "int":
        return lambda v: v if isinstance(v, int) and not isinstance(v, bool) else text_cell(v)
    if kind == "severity":
        return lambda value: _styled(
            ws, text_cell(value), f"etd_sev_{value}" if str(value) in SEVERITY_COLOURS else None
        )
    if kind == "wrap":
        chars = int(width * CHARS_PER_WIDTH)

        def wrapped(value):  # only text longer than a line needs the style (a style per cell costs time)
            text = text_cell(value)
            return _styled(ws, text, "etd_wrap") if text and len(text) > chars else text

        return wrapped
    return text_cell


def _width(column: Column, index: int, sample: Sequence[Sequence]) -> float:
    low, high = WIDTH_LIMITS[column.kind]
    if column.width:
        return column.width
    longest = max((len(str(row[index])) for row in sample if row[index] is not None), default=0)
    return max(low, min(high, max(min(len(column.header), 24), longest) + 2))


def pages_across(width: float) -> int:
    """Pages a sheet `width` units wide is printed across, at MIN_PRINT_SCALE or larger."""
    return max(1, math.ceil(width / (PAGE_UNITS / MIN_PRINT_SCALE)))


def _page_setup(ws, *, title_row: bool = True, across: int = 1) -> None:
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = across
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.page_margins = PageMargins(left=0.3, right=0.3, top=0.5, bottom=0.5, header=0.25, footer=0.25)
    ws.oddFooter.center.text = "&A, page &P of &N"
    if title_row:
        ws.print_title_rows = "1:1"


def write_table(wb: Workbook, table: Table, index: int | None = None) -> int:
    """One sheet (at `index`, default last): bold frozen header, autofilter, sized columns, typed cells.

    Returns the row count. The rows may be slow to come (the Users sheet streamed during a run): the
    column widths wait for the first SAMPLE_ROWS rows or the end, whichever comes first."""
    ws = wb.create_sheet(table.name, index)
    rows = iter(table.rows)
    head = list(islice(rows, SAMPLE_ROWS))
    widths = [_width(column, i, head) for i, column in enumerate(table.columns)]
    for i, width in enumerate(widths):
        ws.column_dimensions[get_column_letter(i + 1)].width = width
    ws.freeze_panes = "A2"
    printed = table.printed or len(table.columns)
    _page_setup(ws, across=pages_across(sum(widths[:printed])))
    header_lines = max(
        text_lines(c.header, int(w) - 1)  # bold, and the filter button takes room
        for c, w in zip(table.columns, widths, strict=True)
    )
    ws.row_dimensions[1].height = 15.0 * header_lines + 2
    ws.append([_styled(ws, c.header, "etd_header") for c in table.columns])
    convert = [_converter(ws, c, w) for c, w in zip(table.columns, widths, strict=True)]
    wrapped = [(i, int(widths[i] * CHARS_PER_WIDTH)) for i, c in enumerate(table.columns) if c.kind == "wrap"]
    count = 0
    for row in chain(head, rows):
        count += 1
        lines = max((text_lines(str(row[i]), chars) for i, chars in wrapped if row[i]), default=1)
        if lines > 1:  # spreadsheets do not grow rows on opening; the dimension is dropped once written
            ws.row_dimensions[count + 1].height = 15.0 * min(lines, 20) + 2
        cells = [f(v) for f, v in zip(convert, row, strict=True)]
        if lines > 1:  # a tall row: plain cells align to the top like the wrapped text beside them
            cells = [c if isinstance(c, Cell) else _styled(ws, c, "etd_top") for c in cells]
        ws.append(cells)
        if lines > 1:
            del ws.row_dimensions[count + 1]
    ws.auto_filter.ref = f"A1:{get_column_letter(len(table.columns))}{count + 1}"
    if printed < len(table.columns):
        ws.print_area = f"A1:{get_column_letter(printed)}{count + 1}"
    return count


class SheetWriter:
    """Appends rows to a write-only sheet while knowing the current row number."""

    def __init__(self, ws):
        self.ws = ws
        self.row = 0

    def add(self, cells: dict[str, object], *, height: float | None = None, merge: str | None = None) -> int:
        self.row += 1
        if height:
            self.ws.row_dimensions[self.row].height = height
        if merge:
            first, last = merge.split(":")
            self.ws.merged_cells.add(f"{first}{self.row}:{last}{self.row}")
        width = max((ord(c) - 64 for c in cells), default=0)
        line = [None] * width
        for col, value in cells.items():
            line[ord(col) - 65] = value
        self.ws.append(line)
        return self.row

    def blank(self, n: int = 1) -> None:
        for _ in range(n):
            self.add({})


def text_lines(text: str, chars: int) -> int:
    """Lines a wrapped cell needs: greedy word wrap at `chars` characters a line."""
    if len(text) <= chars and "\n" not in text:
        return 1
    total = 0
    for paragraph in text.split("\n"):
        lines, used = 1, 0
        for word in paragraph.split():
            need = len(word) + (1 if used else 0)
            if used and used + need > chars:
                lines, used = lines + 1, len(word)
            else:
                used += need
            while used > chars:  # a word longer than the line breaks anywhere
                lines, used = lines + 1, used - chars
        total += lines
    return max(1, total)


def _height(*texts: tuple[str | None, int]) -> float | None:
    """A row height for wrapped text: spreadsheets do not grow rows by themselves on opening a file."""
    lines = max((text_lines(text, chars) for text, chars in texts if text), default=1)
    return 15.0 * lines + 2 if lines > 1 else None


def section(sh: SheetWriter, cell, title: str) -> None:
    sh.blank()
    sh.add({"A": cell(title, "etd_section")})
