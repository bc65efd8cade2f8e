"""write_reports: the earlier reports read, the run assessed, each chosen format rendered and written safely."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from audit.config import AuditConfig
from audit.models import CheckInfo, RunResult
from audit.report import files as fs
from audit.report.assess import Assessment, assess, read_previous
from audit.report.changes import FAMILY
from audit.report.exceptions import AcceptedException
from audit.report.formats import FORMATS, Rendering, SheetRows, names, parse_formats, writing_order
from audit.report.jsonreport import ReportError, read_json_report
from audit.report.stream import UsersStream
from audit.report.tables import Lookups
from audit.report.verdict import NOT_SAFE, SAFE, severity_counts

log = logging.getLogger("audit")

DEFAULT_FORMATS = AuditConfig().formats  # what a config that names no formats writes


@dataclass(frozen=True)
class ReportFiles:
    """The files one report was written to, and the assessment they render."""

    assessment: Assessment
    paths: Mapping[str, Path]  # format name -> file, in the order of the format registry

    def path(self, fmt: str) -> Path | None:
        return self.paths.get(fmt)

    @property
    def xlsx(self) -> Path | None:
        return self.path("xlsx")

    @property
    def json(self) -> Path | None:
        return self.path("json")

    @property
    def csv(self) -> Path | None:
        return self.path("csv")


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
    formats: Iterable[str] = DEFAULT_FORMATS,
    keep: int = 12,
    exceptions: Sequence[AcceptedException] = (),
    now: datetime | None = None,
    catalogue: Sequence[CheckInfo] | None = None,
    lookups: Lookups | None = None,
    sheet_rows: SheetRows | None = None,
    extra_notes: Sequence[str] = (),
    users: UsersStream | None = None,
) -> ReportFiles:
    """Read the earlier reports, assess the run, render each chosen format; each file appears whole or not at all.

    users: the Users sheet written while the run went on (audit.report.stream); the caller discards it."""
    formats = parse_formats(formats)
    if stem is not None:
        check_stem(stem)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    out_dir = Path(out_dir)
    fs.ensure_dir(out_dir)
    fs.remove_stale_temps(out_dir, FAMILY)
    if stem is None:
        stem = default_stem(now)
        base, n = stem, 2
        while any((out_dir / f"{stem}.{f}").exists() for f in names()):
            stem, n = f"{base}-{n}", n + 1
    catalogue = _catalogue() if catalogue is None else list(catalogue)

    previous = read_previous(out_dir, stem, result)
    assessment = assess(result, exceptions, previous, stem=stem, now=now, notes=extra_notes)
    rendering = Rendering(result, assessment, catalogue, lookups or Lookups.default(), sheet_rows or {}, users)
    staged: list[tuple[Path, Path]] = []
    try:
        for fmt in writing_order(formats):
            target = out_dir / f"{stem}.{fmt.name}"
            staged.append((fs.stage(target, lambda fh, fmt=fmt: fmt.write(fh, rendering)), target))
        fs.commit(staged, written)
    except BaseException:
        fs.discard(staged)
        fs.discard_stem(out_dir, stem)
        raise
    by_format = {target.suffix[1:]: target for _, target in staged}
    if stem.startswith(FAMILY):
        for path in fs.prune(out_dir, FAMILY, stem, keep, is_report=_reads_as_report):
            log.info("pruned old report %s", path.name)
    return ReportFiles(assessment, {name: by_format[name] for name in FORMATS if name in by_format})


def _reads_as_report(path: Path) -> bool:
    try:
        read_json_report(path)
    except ReportError:
        return False
    return True


def summary_line(result: RunResult, assessment: Assessment) -> str:
    """One line for a mail subject, e.g. 'contoso — 12 findings (3 critical, +2 new, -1 resolved)'."""
    tenants = [t.name for t in result.tenants]
    who = ", ".join(tenants) if 0 < len(tenants) <= 3 else f"{len(tenants)} tenants"
    counted = assessment.findings
    changes = assessment.changes
    counts = severity_counts(counted)
    parts = [f"{counts[s]} {s}" for s in ("critical", "high") if counts[s]]
    if changes.previous is not None:
        parts += [f"+{len(changes.new)} new", f"-{len(changes.resolved)} resolved"]
    line = f"{who} — {len(counted)} finding{'s' if len(counted) != 1 else ''}"
    if parts:
        line += f" ({', '.join(parts)})"
    judged = assessment.verdict
    if judged.word == SAFE:
        line += " — safe"
    elif judged.gaps:
        failed = [t.name for t in result.tenants if t.status == "failed"]
        line += f" — INCOMPLETE: {', '.join(failed) + ' failed' if failed else f'{len(judged.gaps)} gaps'}"
    elif judged.word == NOT_SAFE and not parts:
        line += " — not safe"
    return line
