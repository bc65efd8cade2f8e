"""Writing a triage: the workbook (Summary + Rows), JSON and CSV, each whole or not at all.

The files are staged and renamed into place by the report's own file handling (audit.report.files).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from openpyxl.cell import WriteOnlyCell

from audit import __version__
from audit.report import files as fs
from audit.report.cells import excel_time, iso, text_cell
from audit.report.formats import write_csv
from audit.report.jsonreport import dump
from audit.report.tables import Column
from audit.report.tables import Table as SheetTable
from audit.report.workbook import SheetWriter, new_workbook, section, text_lines, write_table
from audit.triage.result import Outcome, TriagedRow, TriageResult

STEM_PREFIX = fs.TRIAGE_PREFIX
FORMATS = ("xlsx", "json", "csv")


ADDED = ("Tenant", "Cause", "Check id", "Outcome", "Evidence", "Fix")
ADDED_KINDS = {"Evidence": ("wrap", 60), "Fix": ("wrap", 60), "Cause": ("wrap", 34)}


def added_headers(header: Sequence[str]) -> list[str]:
    """The triage's columns, renamed 'Triage <name>' where the log already has a column of that name."""
    taken = {h.strip().lower() for h in header}
    return [f"Triage {name}" if name.lower() in taken else name for name in ADDED]


def rows_table(result: TriageResult) -> SheetTable:
    columns = [Column(text_cell(h) or "(unnamed)") for h in result.header]
    for name, base in zip(added_headers(result.header), ADDED, strict=True):
        kind, width = ADDED_KINDS.get(base, ("text", 0))
        columns.append(Column(name, kind, width))

    def rows():
        for r in result.rows:
            d = r.diagnosis
            yield [
                *(r.values.get(h, "") for h in result.header),
                r.tenant or None,
                d.cause,
                d.check_id or None,
                str(d.outcome),
                d.evidence,
                d.fix,
            ]

    return SheetTable("Rows", columns, rows())


def cause_counts(rows: Iterable[TriagedRow]) -> list[tuple[str, str, str, int]]:
    """(cause, check id, outcome, rows), most frequent first."""
    counts = Counter((r.diagnosis.cause, r.diagnosis.check_id, str(r.diagnosis.outcome)) for r in rows)
    return [
        (cause, check, outcome, n)
        for (cause, check, outcome), n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


def triage_json(result: TriageResult, written: datetime) -> dict:
    return {
        "kind": "etd-audit-triage",
        "triage_schema": 1,
        "version": __version__,
        "written": iso(written),
        "error_log": str(result.log_path),
        "header": result.header,
        "exit_code": result.exit_code,
        "rows": [
            {
                "row": r.row,
                "values": r.values,
                "address": r.address,
                "error": r.error,
                "error_kind": r.error_kind,
                "tenant": r.tenant or None,
                "cause": r.diagnosis.cause,
                "check_id": r.diagnosis.check_id or None,
                "outcome": str(r.diagnosis.outcome),
                "evidence": r.diagnosis.evidence,
                "fix": r.diagnosis.fix,
            }
            for r in result.rows
        ],
        "causes": [
            {"cause": c, "check_id": k or None, "outcome": o, "rows": n} for c, k, o, n in cause_counts(result.rows)
        ],
        "unreadable": [{"line": line, "reason": why} for line, why in result.unreadable],
        "tenants": [
            {
                "name": t.name,
                "tenant_id": t.tenant_id,
                "status": t.status,
                "error": t.error,
                "addresses_looked_up": t.looked_up,
            }
            for t in result.tenants
        ],
    }


SUMMARY_WIDTHS = {"A": 44, "B": 28, "C": 18, "D": 10, "E": 70}


def _summary(wb, result: TriageResult, written: datetime) -> None:
    ws = wb.create_sheet("Summary")
    for col, width in SUMMARY_WIDTHS.items():
        ws.column_dimensions[col].width = width
    sh = SheetWriter(ws)

    def cell(value, style: str | None = None):
        value = text_cell(value) if isinstance(value, str) else value
        if style is None or value is None:
            return value
        c = WriteOnlyCell(ws, value=value)
        c.style = style
        return c

    outcomes = Counter(str(r.diagnosis.outcome) for r in result.rows)
    sh.add({"A": cell("Remediation error log triage", "etd_title")}, height=24)
    sh.blank()
    facts = [
        ("Error log", cell(result.log_path.name, "etd_value")),
        ("Rows triaged", cell(len(result.rows), "etd_value")),
        ("Lines not readable", cell(len(result.unreadable), "etd_value")),
        *((f"Rows: {o.value}", cell(outcomes.get(o.value, 0), "etd_value")) for o in Outcome),
        ("Tenants looked up", cell(len(result.tenants), "etd_value")),
        ("Exit code", cell(result.exit_code, "etd_value")),
        ("Tool version", cell(__version__, "etd_value")),
        ("Written (UTC)", cell(excel_time(written), "etd_time")),
    ]
    for label, value in facts:
        sh.add({"A": cell(label, "etd_label"), "B": value})

    section(sh, cell, "Causes")
    sh.add(
        {
            "A": cell("Cause", "etd_header"),
            "B": cell("Check", "etd_header"),
            "C": cell("Outcome", "etd_header"),
            "D": cell("Rows", "etd_header"),
        }
    )
    for cause, check, outcome, n in cause_counts(result.rows):
        sh.add(
            {
                "A": cell(cause, "etd_wrap"),
                "B": cell(check or "-", "etd_value"),
                "C": cell(outcome, "etd_value"),
                "D": cell(n),
            }
        )

    section(sh, cell, "Tenants")
    sh.add(
        {
            "A": cell("Tenant", "etd_header"),
            "B": cell("Tenant id", "etd_header"),
            "C": cell("Status", "etd_header"),
            "D": cell("Looked up", "etd_header"),
            "E": cell("Problem", "etd_header"),
        }
    )
    if not result.tenants:
        sh.add({"A": cell("No tenant was needed: no row names a mailbox.", "etd_value")})
    for t in result.tenants:
        sh.add(
            {
                "A": cell(t.name, "etd_value"),
                "B": cell(t.tenant_id, "etd_value"),
                "C": cell(t.status, f"etd_status_{t.status}"),
                "D": cell(t.looked_up),
                "E": cell(t.error, "etd_wrap"),
            },
            height=15 * text_lines(t.error, 70) if t.error else None,
        )

    section(sh, cell, "Lines not readable")
    if not result.unreadable:
        sh.add({"A": cell("None: every line of the file was read.", "etd_value")})
    else:
        sh.add({"A": cell("Line", "etd_header"), "B": cell("Why", "etd_header")})
        for line, why in result.unreadable:
            sh.add({"A": cell(line), "B": cell(why, "etd_wrap")})


def write_triage(result: TriageResult, out_dir: Path, formats: Iterable[str], now: datetime) -> list[Path]:
    """The workbook (Summary + Rows), JSON and CSV of a triage, each written whole or not at all."""
    formats = tuple(dict.fromkeys(f.strip().lower() for f in formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(
            f"unknown output format {unknown[0] if unknown else '(none)'}; choose from {', '.join(FORMATS)}"
        )
    fs.ensure_dir(out_dir)
    fs.remove_stale_temps(out_dir, STEM_PREFIX)
    stem = fs.free_stem(out_dir, f"{STEM_PREFIX}{now:%Y%m%dT%H%M%SZ}")

    def xlsx(fh) -> None:
        wb = new_workbook()
        _summary(wb, result, now)
        write_table(wb, rows_table(result))
        wb.save(fh)

    writers = {
        "xlsx": xlsx,
        "csv": lambda fh: write_csv(fh, rows_table(result)),
        "json": lambda fh: fh.write(dump(triage_json(result, now))),
    }
    return fs.write_whole(out_dir, stem, {fmt: writers[fmt] for fmt in FORMATS if fmt in formats})


def read_triage_json(path: str | Path) -> dict:
    """A triage JSON written by `write_triage` (for tools and tests)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("kind") != "etd-audit-triage":
        raise ValueError(f"{path}: not a triage report")
    return data
