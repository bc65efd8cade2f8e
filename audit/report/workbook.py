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
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain, islice

from openpyxl import Workbook
from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Alignment, Border, Font, NamedStyle, PatternFill, Side
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.properties import PageSetupProperties

from audit.models import CheckInfo, Finding, RunResult, TenantStatus
from audit.report.cells import excel_time, text_cell
from audit.report.tables import Column, Table
from audit.report.tally import tally
from audit.report.verdict import INCOMPLETE, NOT_SAFE, SAFE, SEVERITIES, Verdict

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
TIME_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
SAMPLE_ROWS = 500  # rows looked at to size the columns of a sheet
CHARS_PER_WIDTH = 1.1  # body-text characters per unit of column width (a unit is one digit wide)
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
            font=Font(bold=True),
            fill=PatternFill("solid", fgColor="D9E1F2"),
            border=Border(bottom=thin),
            alignment=Alignment(wrap_text=True, vertical="top"),
        ),
        NamedStyle(
            "etd_header_indent",
            font=Font(bold=True),
            fill=PatternFill("solid", fgColor="D9E1F2"),
            border=Border(bottom=thin),
            alignment=indented,
        ),
        NamedStyle("etd_wrap", alignment=Alignment(wrap_text=True, vertical="top")),
        NamedStyle("etd_wrap_indent", alignment=indented),
        NamedStyle("etd_time", number_format=TIME_FORMAT, alignment=top),
        NamedStyle("etd_date", number_format=DATE_FORMAT, alignment=top),
        NamedStyle("etd_title", font=Font(bold=True, size=16)),
        NamedStyle("etd_section", font=Font(bold=True, size=12, color="1F3864"), border=Border(bottom=thin)),
        NamedStyle("etd_label", font=Font(bold=True), alignment=top),
        NamedStyle("etd_value", alignment=Alignment(horizontal="left", vertical="top")),
        NamedStyle("etd_value_time", number_format=TIME_FORMAT, alignment=Alignment(horizontal="left", vertical="top")),
        NamedStyle("etd_top", alignment=top),
        NamedStyle("etd_number", alignment=Alignment(horizontal="right", vertical="top")),
    ]
    for name, (fill, font) in SEVERITY_COLOURS.items():
        styles.append(
            NamedStyle(
                f"etd_sev_{name}",
                font=Font(bold=True, color=font),
                fill=PatternFill("solid", fgColor=fill),
                alignment=top,
            )
        )
    for name, fill in VERDICT_COLOURS.items():
        styles.append(
            NamedStyle(
                f"etd_verdict_{name}",
                font=Font(bold=True, size=16, color="FFFFFF"),
                fill=PatternFill("solid", fgColor=fill),
                alignment=Alignment(horizontal="center", vertical="center"),
            )
        )
    for name, fill in STATUS_COLOURS.items():
        styles.append(NamedStyle(f"etd_status_{name}", fill=PatternFill("solid", fgColor=fill), alignment=top))
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


def _converter(ws, column: Column) -> Callable[[object], object]:
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
        return lambda value: _styled(ws, text_cell(value), "etd_wrap")
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


def write_table(wb: Workbook, table: Table) -> int:
    """One sheet: bold frozen header, autofilter, sized columns, typed cells. Returns the row count."""
    ws = wb.create_sheet(table.name)
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
    convert = [_converter(ws, c) for c in table.columns]
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


@dataclass(frozen=True)
class SummaryInput:
    result: RunResult
    verdict: Verdict
    counted: Sequence[Finding]
    accepted: Sequence[Finding]
    catalogue: Sequence[CheckInfo]
    previous: str | None  # file name of the report compared with
    notes: Sequence[str]
    written: datetime


# Summary layout: A label/tenant/check, B value/id/title, C status/severity, D..L numbers, M text.
SUMMARY_WIDTHS = {
    "A": 24,
    "B": 40,
    "C": 11,
    "D": 12,
    "E": 12,
    "F": 12,
    "G": 12,
    "H": 10,
    "I": 10,
    "J": 10,
    "K": 10,
    "L": 10,
    "M": 60,
}
LAST = "M"


def _chars(first: str, last: str) -> int:
    """About how many characters of body text fit on one line across columns first..last."""
    cols = range(ord(first), ord(last) + 1)
    return int(sum(SUMMARY_WIDTHS[chr(c)] for c in cols) * CHARS_PER_WIDTH)


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


def write_summary(wb: Workbook, s: SummaryInput) -> None:
    ws = wb.create_sheet("Summary")
    for col, width in SUMMARY_WIDTHS.items():
        ws.column_dimensions[col].width = width
    _page_setup(ws, title_row=False)
    sh = SheetWriter(ws)

    def cell(value, style=None):
        return _styled(ws, text_cell(value) if isinstance(value, str) else value, style)

    result, verdict = s.result, s.verdict
    sh.add({"A": cell("Mail remediation readiness audit", "etd_title")}, height=24)
    sh.add(
        {"A": cell(verdict.word, f"etd_verdict_{verdict.word}"), "B": cell(verdict.reason, "etd_wrap")},
        height=max(36.0, _height((verdict.reason, _chars("B", "M"))) or 0),
        merge="B:M",
    )
    sh.blank()

    # Run facts on the left, the chart on the right (anchored at D4).
    seconds = (result.finished - result.started).total_seconds()
    duration = int(seconds)
    facts = [
        ("Run started (UTC)", cell(excel_time(result.started), "etd_value_time")),
        ("Run finished (UTC)", cell(excel_time(result.finished), "etd_value_time")),
        (
            "Duration",
            cell(
                f"{duration // 3600} h {duration % 3600 // 60} min {duration % 60} s"
                if duration >= 3600
                else f"{duration // 60} min {duration % 60} s"
                if duration >= 60
                else f"{seconds:.1f} s",
                "etd_value",
            ),
        ),
        ("Tool version", cell(result.version, "etd_value")),
        ("Mailbox probes", cell("on" if result.probes else "off (directory data only)", "etd_value")),
        ("Tenants", cell(len(result.tenants), "etd_value")),
        ("Findings that count", cell(len(s.counted), "etd_value")),
        ("Accepted by exception", cell(len(s.accepted), "etd_value")),
        ("Compared with", cell(s.previous or "no earlier report in this folder", "etd_wrap")),
        ("Report written (UTC)", cell(excel_time(s.written), "etd_value_time")),
    ]
    chart_at = sh.row + 1
    for label, value in facts:
        sh.add({"A": cell(label, "etd_label"), "B": value})
    checks = _check_rows(s)
    chart_height = min(16.0, max(6.5, 1.8 + 0.55 * len(checks)))  # cm
    sh.blank(max(1, math.ceil(chart_height / 0.53) + 1 - len(facts)))

    _tenants_section(sh, cell, s)
    _gaps_section(sh, cell, verdict)
    first, last = _checks_section(sh, cell, checks)
    _notes_section(sh, cell, s)

    if checks:
        chart = BarChart()
        chart.type = "bar"
        chart.style = 10
        chart.title = "Findings by check"
        chart.legend = None
        chart.y_axis.title = "findings"
        chart.y_axis.scaling.min = 0
        chart.y_axis.majorUnit = max(1, math.ceil(max(r.findings for r in checks) / 5))
        chart.y_axis.number_format = "0"
        chart.x_axis.delete = False
        chart.y_axis.delete = False
        chart.x_axis.scaling.orientation = "maxMin"  # same order as the table, top to bottom
        chart.add_data(Reference(ws, min_col=4, min_row=first - 1, max_row=last), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=first, max_row=last))
        chart.width, chart.height = 22.0, chart_height
        ws.add_chart(chart, f"D{chart_at}")
    ws.print_area = f"A1:{LAST}{sh.row}"


def section(sh: SheetWriter, cell, title: str) -> None:
    sh.blank()
    sh.add({"A": cell(title, "etd_section")})


def _tenants_section(sh: SheetWriter, cell, s: SummaryInput) -> None:
    section(sh, cell, "Tenants")
    headers = {
        "A": "Tenant",
        "B": "Tenant id",
        "C": "Status",
        "D": "Users in directory",
        "E": "Users enumerated",
        "F": "Mailboxes probed",
        "G": "Not assessed",
        "H": "Critical",
        "I": "High",
        "J": "Medium",
        "K": "Low",
        "L": "Accepted",
        "M": "Problem",
    }
    styles = {
        "H": "etd_sev_critical",
        "I": "etd_sev_high",
        "J": "etd_sev_medium",
        "K": "etd_sev_low",
        "M": "etd_header_indent",
    }
    sh.add({col: cell(text, styles.get(col, "etd_header")) for col, text in headers.items()}, height=30)
    counts_of = tally(s.counted, s.accepted)
    for t in s.result.tenants:
        counts = counts_of.tenant(t.tenant_id)
        accepted = counts["accepted"]
        not_assessed = sum(t.not_assessed.values())
        problems = [t.error] if t.error else []
        problems += [f"{n} not assessed: {reason}" for reason, n in sorted(t.not_assessed.items()) if n]
        if t.not_evaluated:
            problems.append(f"{len(t.not_evaluated)} check(s) not evaluated")
        failed = t.status == TenantStatus.FAILED
        problem = "; ".join(problems)
        sh.add(
            {
                "A": cell(t.name, "etd_value"),
                "B": cell(t.tenant_id, "etd_value"),
                "C": cell(str(t.status), f"etd_status_{t.status}"),
                "D": cell(t.users_in_directory if t.users_in_directory is not None else "unknown", "etd_number"),
                "E": cell("n/a" if failed else t.users_scanned, "etd_number"),
                "F": cell("n/a" if failed else t.mailboxes_probed, "etd_number"),
                "G": cell("n/a" if failed else not_assessed, "etd_number"),
                **{
                    col: cell("n/a" if failed else counts[sev], "etd_number")
                    for col, sev in zip("HIJK", SEVERITIES, strict=True)
                },
                "L": cell(accepted, "etd_number"),
                "M": cell(problem or None, "etd_wrap_indent"),
            },
            height=_height((problem, _chars("M", "M"))),
        )


def _gaps_section(sh: SheetWriter, cell, verdict: Verdict) -> None:
    section(sh, cell, "Could not be assessed")
    if not verdict.gaps:
        sh.add({"A": cell("Nothing: every tenant was read and every check evaluated.", "etd_value")})
        return
    sh.add(
        {"A": cell("Tenant", "etd_header"), "B": cell("What", "etd_header"), "C": cell("Reason", "etd_header")},
        merge="C:M",
    )
    for gap in verdict.gaps:
        sh.add(
            {"A": cell(gap.tenant, "etd_wrap"), "B": cell(gap.what, "etd_wrap"), "C": cell(gap.reason, "etd_wrap")},
            height=_height((gap.reason, _chars("C", "M")), (gap.what, _chars("B", "B"))),
            merge="C:M",
        )


@dataclass(frozen=True)
class _CheckRow:
    check_id: str
    title: str
    severity: str
    findings: int
    accepted: int
    not_evaluated_in: str
    predicts: str


def _check_rows(s: SummaryInput) -> list[_CheckRow]:
    info = {c.id: c for c in s.catalogue}
    ids = list(info)
    for f in chain(s.counted, s.accepted):
        if f.check_id not in info and f.check_id not in ids:
            ids.append(f.check_id)
    rows = []
    counts = tally(s.counted, s.accepted)
    for check_id in ids:
        c = info.get(check_id)
        sample = next((f for f in chain(s.counted, s.accepted) if f.check_id == check_id), None)
        missing = [t.name for t in s.result.tenants if any(n.check_id == check_id for n in t.not_evaluated)]
        rows.append(
            _CheckRow(
                check_id=check_id,
                title=c.title if c else "(not in this version's catalogue)",
                severity=str(c.severity if c else sample.severity),
                findings=counts.check(check_id)[0],
                accepted=counts.check(check_id)[1],
                not_evaluated_in=", ".join(missing),
                predicts=c.predicts if c else sample.predicted_error,
            )
        )
    return rows


def _checks_section(sh: SheetWriter, cell, rows: Sequence[_CheckRow]) -> tuple[int, int]:
    section(sh, cell, "Checks")
    if not rows:
        sh.add({"A": cell("No check catalogue was available and nothing was found.", "etd_value")})
        return 0, 0
    sh.add(
        {
            "A": cell("Check", "etd_header"),
            "B": cell("Title", "etd_header"),
            "C": cell("Severity", "etd_header"),
            "D": cell("Findings", "etd_header"),
            "E": cell("Accepted", "etd_header"),
            "F": cell("Not evaluated in", "etd_header_indent"),
            "M": cell("Predicted error", "etd_header_indent"),
        },
        merge="F:L",
    )
    first = sh.row + 1
    for r in rows:
        sh.add(
            {
                "A": cell(r.check_id, "etd_value"),
                "B": cell(r.title, "etd_wrap"),
                "C": cell(r.severity, f"etd_sev_{r.severity}" if r.severity in SEVERITY_COLOURS else None),
                "D": cell(r.findings, "etd_number"),
                "E": cell(r.accepted, "etd_number"),
                "F": cell(r.not_evaluated_in or None, "etd_wrap_indent"),
                "M": cell(r.predicts, "etd_wrap_indent"),
            },
            height=_height(
                (r.not_evaluated_in, _chars("F", "L")), (r.title, _chars("B", "B")), (r.predicts, _chars("M", "M"))
            ),
            merge="F:L",
        )
    return first, sh.row


def _notes_section(sh: SheetWriter, cell, s: SummaryInput) -> None:
    if not s.notes:
        return
    section(sh, cell, "Notes")
    for note in s.notes:
        sh.add({"A": cell(note, "etd_wrap")}, height=_height((note, _chars("A", LAST))), merge=f"A:{LAST}")
