"""The output formats: one table, FORMATS, from a format's name to the function that renders an assessment.

The config's audit.formats, the CLI's --format, the writer, the shard merge and the pruning of old
reports all take the list of formats from here: a new format is one function and one entry below.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, BinaryIO

from audit.models import CheckInfo, Finding, RunResult
from audit.report.assess import Assessment
from audit.report.cells import iso, text_cell
from audit.report.jsonreport import dump_to, report_json
from audit.report.summary import SummaryInput, write_summary
from audit.report.tables import (
    FINDINGS_PRINTED,
    FINDINGS_SHEET,
    USERS_SHEET,
    Lookups,
    Table,
    accepted_table,
    changes_table,
    checks_table,
    findings_table,
    reordered,
    tenant_names,
    tenant_table,
    users_table,
)
from audit.report.workbook import abandon, new_workbook, write_table

if TYPE_CHECKING:
    from audit.report.stream import UsersStream

# Sheet name -> rows(counted, accepted), used instead of rows built from the tenants' snapshots. Only a
# caller without snapshots needs it: the merge of shard reports, whose JSON carries no users.
SheetRows = Mapping[str, Callable[[Sequence[Finding], Sequence[Finding]], Iterable[Sequence]]]


@dataclass(frozen=True)
class Rendering:
    """What a format is given: the run, its assessment, and what the workbook needs besides."""

    result: RunResult
    assessment: Assessment
    catalogue: Sequence[CheckInfo] = ()
    lookups: Lookups = field(default_factory=Lookups.default)
    sheet_rows: SheetRows = field(default_factory=dict)
    users: UsersStream | None = None  # the Users sheet written during the run (audit.report.stream)


@dataclass(frozen=True)
class Format:
    name: str  # also the file's suffix
    write: Callable[[BinaryIO, Rendering], None]
    read_back: bool = False  # the next run reads it: written last, once everything else is in place


def write_xlsx(fh: BinaryIO, r: Rendering) -> None:
    result, judged = r.result, r.assessment
    names = tenant_names(result)
    counted, accepted = list(judged.findings), judged.accepted_findings
    changes = judged.changes
    summary = SummaryInput(
        result=result,
        verdict=judged.verdict,
        counted=counted,
        accepted=accepted,
        catalogue=r.catalogue,
        previous=changes.previous.name if changes.previous else None,
        notes=list(judged.notes),
        written=judged.assessed,
        trend=list(judged.trend),
    )

    def given(built: Table) -> Table:
        rows = r.sheet_rows.get(built.name)
        return Table(built.name, built.columns, rows(counted, accepted)) if rows else built

    streamed = (
        r.users is not None
        and USERS_SHEET not in r.sheet_rows
        and r.users.sheet_for(result, counted, accepted, r.lookups)
    )
    wb = r.users.workbook if streamed else new_workbook()  # streamed: holds the Users sheet, rows written
    try:  # the sheets in order, the first two put before a streamed Users sheet
        write_summary(wb, summary, index=0)
        findings = findings_table(counted, names, judged.expired_hits)
        write_table(wb, reordered(findings, FINDINGS_SHEET, FINDINGS_PRINTED), index=1)
        if not streamed:
            write_table(wb, given(users_table(result, counted, accepted, r.lookups)))
        write_table(wb, given(tenant_table(result)))
        write_table(wb, changes_table(changes, names, {f.key for f in accepted}))
        write_table(wb, accepted_table(list(judged.accepted), names))
        write_table(wb, checks_table(r.catalogue))
        wb.save(fh)
    except BaseException:
        abandon(wb)
        raise


def write_json(fh: BinaryIO, r: Rendering) -> None:
    judged = r.assessment
    dump_to(fh, report_json(r.result, list(judged.findings), list(judged.accepted), list(judged.trend)))


def write_findings_csv(fh: BinaryIO, r: Rendering) -> None:
    judged = r.assessment
    write_csv(fh, findings_table(list(judged.findings), tenant_names(r.result), judged.expired_hits))


def write_csv(fh: BinaryIO, table: Table) -> None:
    """UTF-8 with a byte-order mark so Excel opens it right; every value inert, times ISO-8601."""
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
    out = csv.writer(text)
    out.writerow([c.header for c in table.columns])
    for row in table.rows:
        out.writerow([iso(v.replace(tzinfo=UTC)) if isinstance(v, datetime) else text_cell(v) for v in row])
    text.flush()
    text.detach()


# In the order they are listed to the admin (and named in a report's file list).
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("xlsx", write_xlsx),
        Format("json", write_json, read_back=True),
        Format("csv", write_findings_csv),
    )
}


def names() -> tuple[str, ...]:
    return tuple(FORMATS)


def suffixes() -> tuple[str, ...]:
    return tuple(f".{name}" for name in FORMATS)


def parse_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """The chosen formats, lower case, once each; ValueError naming the first unknown one and the choices."""
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in formats))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ValueError(
            f"unknown report format {unknown[0] if unknown else '(none)'}; choose from {', '.join(names())}"
        )
    return chosen


def writing_order(formats: Iterable[str]) -> list[Format]:
    """The chosen formats in the order they are written: what the next run reads back comes last."""
    chosen = set(formats)
    return sorted((f for f in FORMATS.values() if f.name in chosen), key=lambda f: f.read_back)
