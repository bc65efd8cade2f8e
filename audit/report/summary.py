"""The Summary sheet, in the order an admin reads it.

1. The verdict for the whole run and why.
2. Fix first: the problems by name, worst first (tenant-wide critical ones before per-user counts), each
   with the number of mailboxes it breaks and what to do.
3. Tenants: per tenant its own verdict and whether it was read completely, with the counts.
4. The run's facts, beside a chart of findings by check and a chart of the trend over earlier reports.
5. Could not be assessed: every gap and its reason.
6. Checks: every check with its findings, worst first, and where it could not be evaluated.
7. Notes.

Every statement is computed from the same verdict (its findings and gaps), so the blocks cannot
contradict each other. The charts' numbers sit in columns beyond the printed area (P onwards).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.chart.label import DataLabelList
from openpyxl.chart.shapes import GraphicalProperties
from openpyxl.drawing.line import LineProperties
from openpyxl.worksheet.pagebreak import Break

from audit.models import CheckInfo, Finding, RunResult, Severity, TenantResult, TenantStatus
from audit.report.cells import excel_time, text_cell
from audit.report.tally import tally
from audit.report.trend import Point
from audit.report.verdict import (
    READ_FAILED,
    READ_FULLY,
    SEVERITIES,
    Verdict,
    tenant_gaps,
    tenant_read,
    tenant_verdict,
)
from audit.report.workbook import (
    CHARS_PER_WIDTH,
    SEVERITY_COLOURS,
    SheetWriter,
    _height,
    _page_setup,
    _styled,
    section,
)


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
    trend: Sequence[Point] = field(default_factory=list)  # oldest first, this run last


# Layout: A label/tenant, B value/id/problem, C verdict/severity, D read/number, E..M numbers, N text.
# P.. (beyond the printed area) hold the charts' numbers.
SUMMARY_WIDTHS = {
    "A": 24,
    "B": 40,
    "C": 12,
    "D": 12,
    "E": 11,
    "F": 11,
    "G": 11,
    "H": 11,
    "I": 9,
    "J": 9,
    "K": 9,
    "L": 9,
    "M": 10,
    "N": 50,
    "O": 4,
    "P": 40,
    "Q": 9,
    "R": 9,
    "S": 9,
    "T": 9,
}
LAST = "N"
FIX_FIRST_ROWS = 10
READ_STYLES = {READ_FULLY: "etd_status_ok", READ_FAILED: "etd_status_failed"}


def _chars(first: str, last: str) -> int:
    """About how many characters of body text fit on one line across columns first..last."""
    cols = range(ord(first), ord(last) + 1)
    return int(sum(SUMMARY_WIDTHS[chr(c)] for c in cols) * CHARS_PER_WIDTH)


def write_summary(wb: Workbook, s: SummaryInput, index: int | None = None) -> None:
    ws = wb.create_sheet("Summary", index)
    for col, width in SUMMARY_WIDTHS.items():
        ws.column_dimensions[col].width = width
    _page_setup(ws, title_row=False)
    sh = SheetWriter(ws)

    def cell(value, style=None):
        return _styled(ws, text_cell(value) if isinstance(value, str) else value, style)

    verdict = s.verdict
    sh.add({"A": cell("Mail remediation readiness audit", "etd_title")}, height=24)
    sh.add(
        {"A": cell(verdict.word, f"etd_verdict_{verdict.word}"), "B": cell(verdict.reason, "etd_wrap")},
        height=max(36.0, _height((verdict.reason, _chars("B", LAST))) or 0),
        merge=f"B:{LAST}",
    )
    _fix_first_section(sh, cell, s)
    _tenants_section(sh, cell, s)
    checks = _check_rows(s)
    _facts_and_charts(sh, cell, s, checks)
    _gaps_section(sh, cell, verdict)
    _checks_section(sh, cell, checks)
    _notes_section(sh, cell, s)
    ws.print_area = f"A1:{LAST}{sh.row}"


# ----------------------------------------------------------------------------------------------- fix first
@dataclass(frozen=True)
class Problem:
    severity: Severity
    tenants: str  # the tenant, or the tenants a per-user problem is found in
    what: str
    mailboxes: int | str  # how many mailboxes it breaks; a text where no count can be given
    fix: str
    tenant_wide: bool

    @property
    def order(self) -> tuple:
        critical_wide = self.tenant_wide and self.severity == Severity.CRITICAL
        count = self.mailboxes if isinstance(self.mailboxes, int) else 0
        return (not critical_wide, -self.severity.rank, -count, self.what)


def _name(tenants: dict[str, TenantResult], tenant_id: str) -> str:
    t = tenants.get(tenant_id.lower())
    return t.name if t else tenant_id


def problems(s: SummaryInput) -> list[Problem]:
    """What to fix first: tenant-wide critical problems, then the rest by severity and mailboxes broken."""
    tenants = {t.tenant_id.lower(): t for t in s.result.tenants}
    info = {c.id: c for c in s.catalogue}
    found: list[Problem] = []
    per_user: dict[tuple[str, Severity], list[Finding]] = {}
    for f in s.counted:
        if f.user_id or f.user_principal_name:
            per_user.setdefault((f.check_id, f.severity), []).append(f)
            continue
        t = tenants.get(f.tenant_id.lower())
        name = _name(tenants, f.tenant_id)
        title = info[f.check_id].title if f.check_id in info else f.check_id
        if f.severity == Severity.CRITICAL:
            mailboxes: int | str = t.users_scanned if t else "every mailbox"
        else:
            mailboxes = "tenant setting"
        found.append(Problem(f.severity, name, f"{title}: {f.evidence}", mailboxes, f.fix, True))
    for (check_id, severity), items in per_user.items():
        names = sorted(
            {tenants[f.tenant_id.lower()].name if f.tenant_id.lower() in tenants else f.tenant_id for f in items}
        )
        title = info[check_id].title if check_id in info else check_id
        where = ", ".join(names) if len(names) <= 3 else f"{len(names)} tenants"
        found.append(Problem(severity, where, f"{title} ({check_id})", len(items), items[0].fix, False))
    return sorted(found, key=lambda p: p.order)


def _fix_first_section(sh: SheetWriter, cell, s: SummaryInput) -> None:
    section(sh, cell, "Fix first")
    found = problems(s)
    if not found:
        sh.add({"A": cell("Nothing: no finding counts against remediation.", "etd_value")})
        return
    sh.add(
        {
            "A": cell("Tenant", "etd_header"),
            "B": cell("Problem", "etd_header"),
            "C": cell("Severity", "etd_header"),
            "D": cell("Mailboxes it breaks", "etd_header"),
            "E": cell("What to do", "etd_header_indent"),
        },
        height=30,
        merge=f"E:{LAST}",
    )
    for p in found[:FIX_FIRST_ROWS]:
        sh.add(
            {
                "A": cell(p.tenants, "etd_wrap"),
                "B": cell(p.what, "etd_wrap"),
                "C": cell(str(p.severity), f"etd_sev_{p.severity}"),
                "D": cell(p.mailboxes, "etd_number"),
                "E": cell(p.fix, "etd_wrap_indent"),
            },
            height=_height((p.fix, _chars("E", LAST) - 2), (p.what, _chars("B", "B")), (p.tenants, _chars("A", "A"))),
            merge=f"E:{LAST}",
        )
    if len(found) > FIX_FIRST_ROWS:
        rest = len(found) - FIX_FIRST_ROWS
        sh.add({"A": cell(f"and {rest} more problem{'s' if rest != 1 else ''}: see the Findings sheet", "etd_value")})


# ------------------------------------------------------------------------------------------------- tenants
def tenant_problem(t: TenantResult, verdict: Verdict) -> str:
    """The tenant's error and its gaps, as the 'Could not be assessed' block lists them."""
    parts = [t.error] if t.error and t.status != TenantStatus.FAILED else []
    parts += [
        g.what if g.what != "tenant not audited" else f"not audited: {g.reason}" for g in tenant_gaps(verdict, t.name)
    ]
    return "; ".join(dict.fromkeys(parts))


def _tenants_section(sh: SheetWriter, cell, s: SummaryInput) -> None:
    section(sh, cell, "Tenants")
    headers = {
        "A": "Tenant",
        "B": "Tenant id",
        "C": "Verdict",
        "D": "Read",
        "E": "Users in directory",
        "F": "Users enumerated",
        "G": "Mailboxes probed",
        "H": "Not assessed",
        "I": "Critical",
        "J": "High",
        "K": "Medium",
        "L": "Low",
        "M": "Accepted",
        "N": "Could not be assessed",
    }
    styles = {
        "I": "etd_sev_critical",
        "J": "etd_sev_high",
        "K": "etd_sev_medium",
        "L": "etd_sev_low",
        "N": "etd_header_indent",
    }
    sh.add({col: cell(text, styles.get(col, "etd_header")) for col, text in headers.items()}, height=30)
    counts_of = tally(s.counted, s.accepted)
    for t in s.result.tenants:
        counts = counts_of.tenant(t.tenant_id)
        failed = t.status == TenantStatus.FAILED
        word = tenant_verdict(t, s.counted, s.verdict)
        read = tenant_read(t, s.verdict)
        problem = tenant_problem(t, s.verdict)
        sh.add(
            {
                "A": cell(t.name, "etd_value"),
                "B": cell(t.tenant_id, "etd_value"),
                "C": cell(word, f"etd_tenant_{word}"),
                "D": cell(read, READ_STYLES.get(read, "etd_status_partial")),
                "E": cell(t.users_in_directory if t.users_in_directory is not None else "unknown", "etd_number"),
                "F": cell("n/a" if failed else t.users_scanned, "etd_number"),
                "G": cell("n/a" if failed else t.mailboxes_probed, "etd_number"),
                "H": cell("n/a" if failed else sum(t.not_assessed.values()), "etd_number"),
                **{
                    col: cell("n/a" if failed else counts[sev], "etd_number")
                    for col, sev in zip("IJKL", SEVERITIES, strict=True)
                },
                "M": cell(counts["accepted"], "etd_number"),
                "N": cell(problem or None, "etd_wrap_indent"),
            },
            height=_height((problem, _chars("N", "N") - 2)),
        )


# ------------------------------------------------------------------------------------------ facts, charts
def _duration(seconds: float) -> str:
    duration = int(seconds)
    if duration >= 3600:
        return f"{duration // 3600} h {duration % 3600 // 60} min {duration % 60} s"
    if duration >= 60:
        return f"{duration // 60} min {duration % 60} s"
    return f"{seconds:.1f} s"


def _facts_and_charts(sh: SheetWriter, cell, s: SummaryInput, checks: Sequence[_CheckRow]) -> None:
    """The run's facts in A:B, the findings chart to their right, the trend chart below the facts."""
    result = s.result
    sh.ws.row_breaks.append(Break(id=sh.row))  # on paper the charts start a page rather than break across two
    section(sh, cell, "Run")
    facts = [
        ("Run started (UTC)", cell(excel_time(result.started), "etd_value_time")),
        ("Run finished (UTC)", cell(excel_time(result.finished), "etd_value_time")),
        ("Duration", cell(_duration((result.finished - result.started).total_seconds()), "etd_value")),
        ("Tool version", cell(result.version, "etd_value")),
        ("Mailbox probes", cell("on" if result.probes else "off (directory data only)", "etd_value")),
        ("Tenants", cell(len(result.tenants), "etd_value")),
        ("Findings that count", cell(len(s.counted), "etd_value")),
        ("Accepted by exception", cell(len(s.accepted), "etd_value")),
        ("Compared with", cell(s.previous or "no earlier report in this folder", "etd_wrap")),
        ("Report written (UTC)", cell(excel_time(s.written), "etd_value_time")),
    ]
    ws = sh.ws
    top = sh.row + 1
    # The charts' numbers, in P.. beside the facts: one row per check, then one row per report.
    data = [("Findings by check (chart data)", *SEVERITIES)]
    data += [(r.label, *(r.by_severity.get(sev) or None for sev in SEVERITIES)) for r in checks]
    check_rows = (top + 1, top + len(checks))
    data.append(())
    data.append(("Open findings by report (chart data)", *SEVERITIES))
    trend_first = top + len(data)
    data += [(f"{excel_time(p.started):%Y-%m-%d %H:%M}", *(p.open.get(sev, 0) for sev in SEVERITIES)) for p in s.trend]
    trend_rows = (trend_first, top + len(data) - 1)

    trend_chart = len(s.trend) >= 2
    chart_height = min(18.0, max(7.0, 3.0 + 0.7 * len(checks)))  # cm
    trend_at = top + len(facts) + 1
    rows = max(len(facts) + (1 + 15 if trend_chart else 2), math.ceil(chart_height / 0.53) + 1, len(data))
    for i in range(rows):
        line: dict[str, object] = {}
        if i < len(facts):
            label, value = facts[i]
            line = {"A": cell(label, "etd_label"), "B": value}
        elif i == len(facts) + 1 and not trend_chart:
            line = {"A": cell("Trend: this is the first report in this folder; the next runs draw it.", "etd_value")}
        if i < len(data) and data[i]:
            header = i == 0 or data[i][0].endswith("(chart data)")
            for col, value in zip("PQRST", data[i], strict=False):
                line[col] = cell(value, "etd_header" if header else None)
        sh.add(line)

    if checks:
        chart = BarChart()
        chart.type = "bar"
        chart.grouping = "stacked"
        chart.overlap = 100
        chart.gapWidth = 40
        chart.style = 10
        chart.title = "Findings by check, worst first"
        chart.y_axis.title = "findings"
        chart.y_axis.scaling.min = 0
        chart.y_axis.number_format = "0"
        chart.y_axis.majorGridlines = None
        chart.x_axis.delete = False
        chart.y_axis.delete = False
        chart.x_axis.scaling.orientation = "maxMin"  # same order as the Checks table, top to bottom
        chart.legend.position = "b"
        chart.add_data(Reference(ws, min_col=17, max_col=20, min_row=top, max_row=check_rows[1]), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=16, min_row=check_rows[0], max_row=check_rows[1]))
        for series, sev in zip(chart.series, SEVERITIES, strict=True):
            series.graphicalProperties = GraphicalProperties(solidFill=SEVERITY_COLOURS[sev][0])
            # the count on each bar: a critical 1 stays readable next to a high 57
            series.dLbls = DataLabelList(
                showVal=True, showSerName=False, showCatName=False, showLegendKey=False, showPercent=False
            )
        chart.width, chart.height = 24.0, chart_height
        ws.add_chart(chart, f"D{top}")
    if trend_chart:
        trend = LineChart()
        trend.title = "Open findings by severity, last reports"
        trend.style = 12
        trend.y_axis.title = "findings"
        trend.y_axis.scaling.min = 0
        trend.y_axis.number_format = "0"
        trend.x_axis.delete = False
        trend.y_axis.delete = False
        trend.legend.position = "b"
        trend.add_data(
            Reference(ws, min_col=17, max_col=20, min_row=trend_rows[0] - 1, max_row=trend_rows[1]),
            titles_from_data=True,
        )
        trend.set_categories(Reference(ws, min_col=16, min_row=trend_rows[0], max_row=trend_rows[1]))
        for series, sev in zip(trend.series, SEVERITIES, strict=True):
            series.graphicalProperties = GraphicalProperties(
                ln=LineProperties(solidFill=SEVERITY_COLOURS[sev][0], w=28575)
            )
            series.smooth = False
        trend.width, trend.height = 11.5, 7.5
        ws.add_chart(trend, f"A{trend_at}")


# --------------------------------------------------------------------------------------- could not assess
def _gaps_section(sh: SheetWriter, cell, verdict: Verdict) -> None:
    section(sh, cell, "Could not be assessed")
    if not verdict.gaps:
        sh.add({"A": cell("Nothing: every tenant was read and every check evaluated.", "etd_value")})
        return
    sh.add(
        {"A": cell("Tenant", "etd_header"), "B": cell("What", "etd_header"), "C": cell("Reason", "etd_header")},
        merge=f"C:{LAST}",
    )
    for gap in verdict.gaps:
        sh.add(
            {"A": cell(gap.tenant, "etd_wrap"), "B": cell(gap.what, "etd_wrap"), "C": cell(gap.reason, "etd_wrap")},
            height=_height((gap.reason, _chars("C", LAST)), (gap.what, _chars("B", "B"))),
            merge=f"C:{LAST}",
        )


# -------------------------------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class _CheckRow:
    check_id: str
    title: str
    severity: str
    findings: int
    accepted: int
    not_evaluated_in: str
    predicts: str
    by_severity: dict[str, int]

    @property
    def label(self) -> str:
        """The chart's category: the check id, marked where it could not be evaluated."""
        if not self.not_evaluated_in:
            return self.check_id
        return f"{self.check_id} (not evaluated in {self.not_evaluated_in})"


def _check_rows(s: SummaryInput) -> list[_CheckRow]:
    """Every check of the catalogue (and any other that fired): worst severity first, then most findings."""
    info = {c.id: c for c in s.catalogue}
    ids = list(info)
    for f in chain(s.counted, s.accepted):
        if f.check_id not in info and f.check_id not in ids:
            ids.append(f.check_id)
    counts = tally(s.counted, s.accepted)
    per_severity = Counter((f.check_id, str(f.severity)) for f in s.counted)
    rows = []
    for check_id in ids:
        c = info.get(check_id)
        sample = next((f for f in chain(s.counted, s.accepted) if f.check_id == check_id), None)
        missing = [g.tenant for g in s.verdict.gaps if g.what == f"check {check_id} not evaluated"]
        rows.append(
            _CheckRow(
                check_id=check_id,
                title=c.title if c else "(not in this version's catalogue)",
                severity=str(c.severity if c else sample.severity),
                findings=counts.check(check_id)[0],
                accepted=counts.check(check_id)[1],
                not_evaluated_in=", ".join(dict.fromkeys(missing)),
                predicts=c.predicts if c else sample.predicted_error,
                by_severity={sev: per_severity[(check_id, sev)] for sev in SEVERITIES},
            )
        )

    def worst(r: _CheckRow) -> int:
        found = [Severity(sev).rank for sev, n in r.by_severity.items() if n]
        return max(found) if found else Severity(r.severity).rank

    return sorted(rows, key=lambda r: (r.findings == 0, -worst(r), -r.findings))


def _checks_section(sh: SheetWriter, cell, rows: Sequence[_CheckRow]) -> None:
    section(sh, cell, "Checks")
    if not rows:
        sh.add({"A": cell("No check catalogue was available and nothing was found.", "etd_value")})
        return
    sh.add(
        {
            "A": cell("Check", "etd_header"),
            "B": cell("Title", "etd_header"),
            "C": cell("Severity", "etd_header"),
            "D": cell("Findings", "etd_header"),
            "E": cell("Accepted", "etd_header"),
            "F": cell("Not evaluated in", "etd_header_indent"),
            "N": cell("Predicted error", "etd_header_indent"),
        },
        merge="F:M",
    )
    for r in rows:
        sh.add(
            {
                "A": cell(r.check_id, "etd_value"),
                "B": cell(r.title, "etd_wrap"),
                "C": cell(r.severity, f"etd_sev_{r.severity}" if r.severity in SEVERITY_COLOURS else None),
                "D": cell(r.findings, "etd_number"),
                "E": cell(r.accepted, "etd_number"),
                "F": cell(r.not_evaluated_in or None, "etd_wrap_indent"),
                "N": cell(r.predicts, "etd_wrap_indent"),
            },
            height=_height(
                (r.not_evaluated_in, _chars("F", "M")), (r.title, _chars("B", "B")), (r.predicts, _chars("N", "N"))
            ),
            merge="F:M",
        )


def _notes_section(sh: SheetWriter, cell, s: SummaryInput) -> None:
    if not s.notes:
        return
    section(sh, cell, "Notes")
    for note in s.notes:
        sh.add({"A": cell(note, "etd_wrap")}, height=_height((note, _chars("A", LAST))), merge=f"A:{LAST}")
