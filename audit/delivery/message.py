"""What a delivered report says: subject line, HTML and text bodies, the attachment, whether there is news.

Every channel (audit/delivery/*.py) takes its words from here, so the mail, the Graph message and the
webhook line agree. Everything taken from the tenants (names, display names, error texts) is
HTML-escaped in the HTML body.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING

from audit.config import Config, EmailConfig
from audit.models import Finding, RunResult, Severity, TenantStatus
from audit.report.tally import severity_counts

if TYPE_CHECKING:
    from audit.graph import GraphClient
    from audit.report import Assessment, ReportFiles

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FILE_TYPES = {".xlsx": XLSX_TYPE, ".json": "application/json", ".csv": "text/csv"}
SEVERITIES = Severity.worst_first()
SMTP_TIMEOUT = 60.0
LISTED_FINDINGS = 50  # new / resolved findings listed in the body; the workbook has them all


class MailError(Exception):
    """The report could not be delivered. str(e) says what failed and what to do; it holds no secret."""


@dataclass(frozen=True)
class Delivery:
    """What every channel is handed: the run, its written report (files.assessment says what it found), the
    config and where secrets come from."""

    result: RunResult
    files: ReportFiles
    config: Config
    environ: Mapping[str, str]
    graph: GraphClient | None = None  # a client for the sending tenant (Graph mail); built when omitted
    timeout: float = SMTP_TIMEOUT


def file_type(path: Path | str) -> str:
    return FILE_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


# ---------------------------------------------------------------------------------------------------
# What the message says


@dataclass(frozen=True)
class TenantLine:
    name: str
    status: str
    error: str | None
    users_scanned: int
    by_severity: dict[str, int]
    findings: int
    new: int
    resolved: int


@dataclass(frozen=True)
class CheckLine:
    check_id: str
    severity: str
    predicted_error: str
    findings: int


@dataclass(frozen=True)
class Summary:
    tenants: tuple[TenantLine, ...]
    checks: tuple[CheckLine, ...]
    new: tuple[Finding, ...]
    resolved: tuple[Finding, ...]


def summarize(result: RunResult, assessment: Assessment) -> Summary:
    findings = list(assessment.findings)  # the findings that count (accepted exceptions taken out)
    new, resolved = tuple(assessment.changes.new), tuple(assessment.changes.resolved)
    lines = []
    for tenant in result.tenants:
        tid = tenant.tenant_id.lower()
        own = [f for f in findings if f.tenant_id.lower() == tid]
        lines.append(
            TenantLine(
                name=tenant.name,
                status=str(tenant.status),
                error=tenant.error,
                users_scanned=tenant.users_scanned,
                by_severity=_severity_counts(own),
                findings=len(own),
                new=sum(1 for f in new if f.tenant_id.lower() == tid),
                resolved=sum(1 for f in resolved if f.tenant_id.lower() == tid),
            )
        )
    per_check = Counter(f.check_id for f in findings)
    first = {}
    for f in findings:
        first.setdefault(f.check_id, f)
    checks = sorted(
        (CheckLine(cid, str(first[cid].severity), first[cid].predicted_error, n) for cid, n in per_check.items()),
        key=lambda c: (-Severity(c.severity).rank, -c.findings, c.check_id),
    )
    return Summary(tuple(lines), tuple(checks), new, resolved)


def _severity_counts(findings: Iterable[Finding]) -> dict[str, int]:
    return severity_counts(findings)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())  # no CR/LF can reach a header


def subject_line(result: RunResult, files: ReportFiles) -> str:
    """e.g. `etd-audit: contoso — 12 findings (3 critical, +2 new, -1 resolved)`; also the webhook text."""
    from audit.report import summary_line

    return _one_line(f"etd-audit: {summary_line(result, files.assessment)}")


def _h(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


_CELL = 'style="border:1px solid #ccc;padding:4px 8px;text-align:left"'
_NUM = 'style="border:1px solid #ccc;padding:4px 8px;text-align:right"'


def _table(head: list[str], rows: list[list[object]], numeric: set[int]) -> str:
    out = ['<table style="border-collapse:collapse;font-family:sans-serif;font-size:13px">', "<tr>"]
    out += [f"<th {_CELL}>{_h(h)}</th>" for h in head]
    out.append("</tr>")
    for row in rows:
        cells = [f"<td {_NUM if i in numeric else _CELL}>{_h(v)}</td>" for i, v in enumerate(row)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _finding_rows(findings: Iterable[Finding], tenants: Mapping[str, str]) -> list[list[object]]:
    rows = []
    for f in list(findings)[:LISTED_FINDINGS]:
        who = f.user_principal_name or "(tenant setting)"
        rows.append(
            [
                tenants.get(f.tenant_id.lower(), f.tenant_id),
                str(f.severity),
                f.check_id,
                who,
                f.display_name,
                f.predicted_error,
            ]
        )
    return rows


def _unverified(assessment: Assessment) -> str:
    count = len(assessment.changes.unverified)
    if not count:
        return ""
    return (
        f"{_plural(count, 'earlier finding')} could not be re-checked in this run (its tenant failed "
        "or the data was not readable); they are counted neither as open nor as resolved."
    )


def _report_names(files: ReportFiles) -> list[str]:
    return [str(p) for p in files.paths.values()]


def render_html(result: RunResult, files: ReportFiles) -> str:
    summary = summarize(result, files.assessment)
    names = {t.tenant_id.lower(): t.name for t in result.tenants}
    tenant_rows = [
        [
            t.name,
            t.status + (f": {t.error}" if t.error else ""),
            t.users_scanned,
            *(t.by_severity[s.value] for s in SEVERITIES),
            t.findings,
            f"+{t.new}",
            f"-{t.resolved}",
        ]
        for t in summary.tenants
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>etd-audit report</title></head>',
        '<body style="font-family:sans-serif;font-size:14px">',
        f"<p>{_h(subject_line(result, files))}</p>",
        f"<p>Run from {_h(result.started.isoformat(timespec='seconds'))} to "
        f"{_h(result.finished.isoformat(timespec='seconds'))}, etd-audit {_h(result.version)}.</p>",
        "<h3>Tenants</h3>",
        _table(
            [
                "Tenant",
                "Status",
                "Users scanned",
                "Critical",
                "High",
                "Medium",
                "Low",
                "Findings",
                "New",
                "Resolved",
            ],
            tenant_rows,
            {2, 3, 4, 5, 6, 7, 8, 9},
        ),
    ]
    if summary.checks:
        parts += [
            "<h3>Findings by check</h3>",
            _table(
                ["Check", "Severity", "Remediation would fail with", "Findings"],
                [[c.check_id, c.severity, c.predicted_error, c.findings] for c in summary.checks],
                {3},
            ),
        ]
    for title, found in (
        ("New since the last report", summary.new),
        ("Resolved since the last report", summary.resolved),
    ):
        if found:
            more = f" (first {LISTED_FINDINGS} of {len(found)})" if len(found) > LISTED_FINDINGS else ""
            parts += [
                f"<h3>{_h(title)}{_h(more)}</h3>",
                _table(
                    ["Tenant", "Severity", "Check", "Account", "Display name", "Remediation would fail with"],
                    _finding_rows(found, names),
                    set(),
                ),
            ]
    if _unverified(files.assessment):
        parts.append(f"<p>{_h(_unverified(files.assessment))}</p>")
    parts.append("<p>The attached report lists every finding with its cause and fix.</p>")
    if _report_names(files):
        parts.append("<p>Report files: " + ", ".join(_h(n) for n in _report_names(files)) + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_text(result: RunResult, files: ReportFiles) -> str:
    summary = summarize(result, files.assessment)
    out = [subject_line(result, files), ""]
    out.append(
        f"{'Tenant':<24} {'Status':<8} {'Users':>7} {'Crit':>5} {'High':>5} {'Med':>5} {'Low':>5} {'New':>5} {'Res':>5}"
    )
    for t in summary.tenants:
        s = t.by_severity
        out.append(
            f"{_one_line(t.name)[:24]:<24} {t.status:<8} {t.users_scanned:>7} {s['critical']:>5} "
            f"{s['high']:>5} {s['medium']:>5} {s['low']:>5} {'+' + str(t.new):>5} {'-' + str(t.resolved):>5}"
        )
        if t.error:
            out.append(f"    {_one_line(t.error)}")
    if summary.checks:
        out += ["", "Findings by check:"]
        out += [f"  {c.findings:>6}  {c.severity:<8} {c.check_id}: {c.predicted_error}" for c in summary.checks]
    names = {t.tenant_id.lower(): t.name for t in result.tenants}
    for title, found in (("New since the last report", summary.new), ("Resolved", summary.resolved)):
        if found:
            out += ["", f"{title}:"]
            out += [f"  {row[0]} {row[1]} {row[2]} {row[3]}" for row in _finding_rows(found, names)]
    if _unverified(files.assessment):
        out += ["", _unverified(files.assessment)]
    out += ["", "The attached report lists every finding with its cause and fix."]
    if _report_names(files):
        out.append("Report files: " + ", ".join(_report_names(files)))
    return "\n".join(out) + "\n"


def attachment_path(files: ReportFiles) -> Path | None:
    """The first file in the format registry's order: the workbook; the JSON or CSV only without a workbook."""
    first = next(iter(files.paths.values()), None)
    return Path(first) if first else None


def build_message(result: RunResult, files: ReportFiles, email: EmailConfig) -> EmailMessage:
    """The report as a MIME message: HTML body with a plain-text alternative, the workbook attached."""
    message = EmailMessage()
    message["Subject"] = subject_line(result, files)
    message["From"] = email.sender or "etd-audit@localhost"
    message["To"] = ", ".join(email.to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=(email.sender or "localhost").rpartition("@")[2] or None)
    message.set_content(render_text(result, files))
    message.add_alternative(render_html(result, files), subtype="html")
    attachment = attachment_path(files)
    if attachment:
        maintype, _, subtype = file_type(attachment).partition("/")
        message.add_attachment(attachment.read_bytes(), maintype=maintype, subtype=subtype, filename=attachment.name)
    return message


# ---------------------------------------------------------------------------------------------------
# Whether to send


def has_news(result: RunResult, assessment: Assessment) -> bool:
    """New or resolved findings, a first report, or a tenant whose status is not what it was."""
    changes = assessment.changes
    if changes.new or changes.resolved or changes.previous is None:
        return True
    before = assessment.previous_statuses
    if before is None:
        return any(t.status != TenantStatus.OK for t in result.tenants)
    return any(before.get(t.tenant_id.lower()) != str(t.status) for t in result.tenants)
