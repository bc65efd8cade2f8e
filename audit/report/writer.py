"""write_reports: the workbook, its JSON twin and the findings CSV, written safely; summary_line."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from audit.models import CheckInfo, Finding, RunResult
from audit.report import files as fs
from audit.report.cells import iso, text_cell
from audit.report.changes import FAMILY, Changes, compare, load_previous
from audit.report.exceptions import AcceptedException, apply_exceptions
from audit.report.jsonreport import ReportError, dump, read_json_report, report_json
from audit.report.summary import SummaryInput, write_summary
from audit.report.tables import (
    FINDINGS_PRINTED,
    FINDINGS_SHEET,
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
from audit.report.trend import Point, trend
from audit.report.verdict import NOT_SAFE, SAFE, Verdict, severity_counts, verdict
from audit.report.workbook import abandon, new_workbook, write_table

log = logging.getLogger("audit")

FORMATS = ("xlsx", "json", "csv")

# Sheet name -> rows(counted, accepted), used instead of rows built from the tenants' snapshots. Only a
# caller without snapshots needs it: the merge of shard reports, whose JSON carries no users.
SheetRows = Mapping[str, Callable[[Sequence[Finding], Sequence[Finding]], Iterable[Sequence]]]


@dataclass(frozen=True)
class ReportFiles:
    xlsx: Path | None
    json: Path | None
    csv: Path | None
    changes: Changes
    accepted: list[Finding] = field(default_factory=list)
    expired_exceptions: list[AcceptedException] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # the findings that count, with first_seen
    verdict: Verdict | None = None


def default_stem(now: datetime) -> str:
    return f"{FAMILY}{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"


STEM_REFUSED = frozenset("/\\*?[]:\0")


def check_stem(stem: str) -> str:
    """A file name stem that stays a plain name in the out folder; ValueError saying why otherwise."""
    if not stem:
        raise ValueError("the stem is empty")
    refused = sorted({c for c in stem if c in STEM_REFUSED or not c.isprintable()})
    if refused:
        shown = " ".join(repr(c) for c in refused)
        raise ValueError(f"'{stem}' holds {shown}; use letters, digits, '-', '_' and '.' (no path, no wildcard)")
    if stem.startswith("."):
        raise ValueError(f"'{stem}' starts with '.': that would be a hidden file, like the writer's temporary ones")
    return stem


def _catalogue() -> list[CheckInfo]:
    try:
        from audit.checks import catalogue
    except ImportError:
        log.warning("the check catalogue is not available; the Checks sheet lists only checks that fired")
        return []
    return list(catalogue())


def write_reports(
    result: RunResult, out_dir: Path, *, lock_wait: float = fs.LOCK_WAIT_SECONDS, **options
) -> ReportFiles:
    """Write the chosen reports of a run to out_dir (see _write_reports), holding the folder's lock.

    A full disk or a read-only folder raises ReportWriteError: earlier reports stay, no temp file stays."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    try:
        fs.ensure_dir(out_dir)
        with fs.folder_lock(out_dir, lock_wait):
            return _write_reports(result, out_dir, written=written, **options)
    except OSError as err:
        raise fs.write_failure(out_dir, err, written) from err


def _write_reports(
    result: RunResult,
    out_dir: Path,
    *,
    written: list[Path],
    stem: str | None = None,
    formats: Iterable[str] = ("xlsx", "json"),
    keep: int = 12,
    exceptions: Sequence[AcceptedException] = (),
    now: datetime | None = None,
    catalogue: Sequence[CheckInfo] | None = None,
    lookups: Lookups | None = None,
    sheet_rows: SheetRows | None = None,
    extra_notes: Sequence[str] = (),
) -> ReportFiles:
    """Write the chosen reports of a run to out_dir; each file appears complete or not at all."""
    formats = tuple(dict.fromkeys(f.strip().lower() for f in formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(
            f"unknown report format {unknown[0] if unknown else '(none)'}; choose from {', '.join(FORMATS)}"
        )
    if stem is not None:
        check_stem(stem)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    out_dir = Path(out_dir)
    fs.ensure_dir(out_dir)
    fs.remove_stale_temps(out_dir, FAMILY)
    if stem is None:
        stem = default_stem(now)
        base, n = stem, 2
        while any((out_dir / f"{stem}.{f}").exists() for f in FORMATS):
            stem, n = f"{base}-{n}", n + 1
    catalogue = _catalogue() if catalogue is None else list(catalogue)
    lookups = lookups or Lookups.default()

    names = tenant_names(result)
    triage = apply_exceptions(result.findings, exceptions, now.date(), names)
    previous_path, previous, notes = load_previous(out_dir, stem, [t.tenant_id for t in result.tenants])
    originals = triage.counted + [f for f, _ in triage.accepted]
    changes, stamped = compare(result, originals, previous, previous_path, notes)
    counted = stamped[: len(triage.counted)]
    accepted = list(zip(stamped[len(triage.counted) :], (e for _, e in triage.accepted), strict=True))
    accepted_findings = [f for f, _ in accepted]
    judged = verdict(result, counted)
    history = trend(out_dir, Point(f"{stem}.json", result.started, severity_counts(counted)))

    summary = SummaryInput(
        result=result,
        verdict=judged,
        counted=counted,
        accepted=accepted_findings,
        catalogue=catalogue,
        previous=previous_path.name if previous_path else None,
        notes=[*_notes(triage.expired, exceptions, triage, changes), *extra_notes],
        written=now,
        trend=history,
    )
    writers = {
        "xlsx": lambda fh: _write_xlsx(
            fh, summary, counted, accepted, changes, triage.expired_hits, lookups, sheet_rows or {}
        ),
        "csv": lambda fh: write_csv(fh, findings_table(counted, names, triage.expired_hits)),
        "json": lambda fh: fh.write(dump(report_json(result, counted, accepted, history))),
    }
    staged: list[tuple[Path, Path]] = []
    try:
        for fmt in ("xlsx", "csv", "json"):  # JSON last: it is what the next run reads
            if fmt in formats:
                target = out_dir / f"{stem}.{fmt}"
                staged.append((fs.stage(target, writers[fmt]), target))
        fs.commit(staged, written)
    except BaseException:
        fs.discard(staged)
        fs.discard_stem(out_dir, stem)
        raise
    written = {target.suffix[1:]: target for _, target in staged}
    if stem.startswith(FAMILY):
        for path in fs.prune(out_dir, FAMILY, stem, keep, is_report=_reads_as_report):
            log.info("pruned old report %s", path.name)
    return ReportFiles(
        xlsx=written.get("xlsx"),
        json=written.get("json"),
        csv=written.get("csv"),
        changes=changes,
        accepted=accepted_findings,
        expired_exceptions=list(triage.expired),
        findings=counted,
        verdict=judged,
    )


def _reads_as_report(path: Path) -> bool:
    try:
        read_json_report(path)
    except ReportError:
        return False
    return True


def _notes(expired, exceptions, triage, changes: Changes) -> list[str]:
    notes = []
    for e in expired:
        hits = sum(1 for x in triage.expired_hits.values() if x is e)
        notes.append(
            f"Exception expired on {e.expires.isoformat()} and no longer applies "
            f"({e.source}: {e.describe()}); {hits} finding(s) it covered count again."
        )
    used = {id(e) for _, e in triage.accepted}
    for e in exceptions:
        if id(e) not in used and e not in expired:
            notes.append(f"Exception matched no finding ({e.source}: {e.describe()}); it may be obsolete.")
    if changes.unverified:
        notes.append(
            f"{len(changes.unverified)} finding(s) of the previous report could not be re-checked "
            "this run (tenant failed or check not evaluated); they are not counted as resolved."
        )
    notes.extend(changes.notes)
    return notes


def _write_xlsx(
    fh: BinaryIO,
    summary: SummaryInput,
    counted,
    accepted,
    changes: Changes,
    expired_hits,
    lookups: Lookups,
    sheet_rows: SheetRows,
) -> None:
    result = summary.result
    names = tenant_names(result)

    def given(built: Table) -> Table:
        rows = sheet_rows.get(built.name)
        return Table(built.name, built.columns, rows(counted, summary.accepted)) if rows else built

    wb = new_workbook()
    try:
        write_summary(wb, summary)
        write_table(wb, reordered(findings_table(counted, names, expired_hits), FINDINGS_SHEET, FINDINGS_PRINTED))
        write_table(wb, given(users_table(result, counted, summary.accepted, lookups)))
        write_table(wb, given(tenant_table(result)))
        write_table(wb, changes_table(changes, names, {f.key for f in summary.accepted}))
        write_table(wb, accepted_table(accepted, names))
        write_table(wb, checks_table(summary.catalogue))
    except BaseException:
        abandon(wb)
        raise
    wb.save(fh)


def write_csv(fh: BinaryIO, table: Table) -> None:
    """UTF-8 with a byte-order mark so Excel opens it right; every value inert, times ISO-8601."""
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
    out = csv.writer(text)
    out.writerow([c.header for c in table.columns])
    for row in table.rows:
        out.writerow([iso(v.replace(tzinfo=UTC)) if isinstance(v, datetime) else text_cell(v) for v in row])
    text.flush()
    text.detach()


def summary_line(result: RunResult, files: ReportFiles) -> str:
    """One line for a mail subject, e.g. 'contoso — 12 findings (3 critical, +2 new, -1 resolved)'."""
    names = [t.name for t in result.tenants]
    who = ", ".join(names) if 0 < len(names) <= 3 else f"{len(names)} tenants"
    counted = files.findings
    counts = severity_counts(counted)
    parts = [f"{counts[s]} {s}" for s in ("critical", "high") if counts[s]]
    if files.changes.previous is not None:
        parts += [f"+{len(files.changes.new)} new", f"-{len(files.changes.resolved)} resolved"]
    line = f"{who} — {len(counted)} finding{'s' if len(counted) != 1 else ''}"
    if parts:
        line += f" ({', '.join(parts)})"
    judged = files.verdict or verdict(result, counted)
    if judged.word == SAFE:
        line += " — safe"
    elif judged.gaps:
        failed = [t.name for t in result.tenants if t.status == "failed"]
        line += f" — INCOMPLETE: {', '.join(failed) + ' failed' if failed else f'{len(judged.gaps)} gaps'}"
    elif judged.word == NOT_SAFE and not parts:
        line += " — not safe"
    return line
