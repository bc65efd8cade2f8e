"""A run judged once: exceptions applied, compared with the previous report, first_seen stamped, the verdict.

    previous = read_previous(out_dir, stem, result)       # reads the folder: hold its lock
    assessment = assess(result, exceptions, previous, stem=stem, now=now)   # pure

Every output format renders the Assessment, and the exit code, the CLI summary and the delivered message
read the same one: nothing downstream applies exceptions, compares or reads an earlier report again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from audit.models import Finding, RunResult, TenantResult
from audit.report import changes as history
from audit.report.changes import Changes, compare
from audit.report.exceptions import AcceptedException, Triage, apply_exceptions
from audit.report.trend import Point, earlier_points
from audit.report.verdict import Verdict, severity_counts, verdict


@dataclass(frozen=True)
class Previous:
    """What the report folder holds from earlier runs: all that assess() needs from the disk."""

    path: Path | None = None  # the newest earlier report compared with
    run: RunResult | None = None  # earlier findings: each tenant from the newest report that covered it
    statuses: Mapping[str, str] | None = None  # tenant id (lower case) -> status, as `path` recorded it
    trend: tuple[Point, ...] = ()  # the earlier reports' counted findings by severity, oldest first
    notes: tuple[str, ...] = ()  # e.g. an earlier report that could not be read


NO_PREVIOUS = Previous()


def read_previous(out_dir: Path, stem: str, result: RunResult) -> Previous:
    """The earlier reports in out_dir that this run (to be written as `stem`) is compared with and charted against."""
    tenant_ids = [t.tenant_id for t in result.tenants]
    path, run, notes, newest = history.read_previous(Path(out_dir), stem, tenant_ids)
    statuses = None if newest is None else {t.tenant_id.lower(): str(t.status) for t in newest.tenants}
    points = earlier_points(Path(out_dir), stem, result.started)
    return Previous(path, run, statuses, tuple(points), tuple(notes))


@dataclass(frozen=True)
class Assessment:
    """The judgement of one run, read by every format, the exit code, the CLI and the delivery."""

    assessed: datetime  # when: the exceptions in force that day, the Summary's "written"
    findings: tuple[Finding, ...]  # the findings that count, first_seen stamped
    accepted: tuple[tuple[Finding, AcceptedException], ...]  # taken out by an exception in force, first_seen stamped
    expired_exceptions: tuple[AcceptedException, ...]  # every expired exception of the file
    expired_hits: Mapping[tuple[str, str, str], AcceptedException]  # finding key -> expired exception it met
    changes: Changes
    verdict: Verdict
    trend: tuple[Point, ...]  # oldest first, this run last
    notes: tuple[str, ...]  # the Summary's notes
    previous_statuses: Mapping[str, str] | None = None  # as Previous.statuses

    @property
    def accepted_findings(self) -> list[Finding]:
        return [f for f, _ in self.accepted]


def assess(
    result: RunResult,
    exceptions: Sequence[AcceptedException],
    previous: Previous = NO_PREVIOUS,
    *,
    stem: str,
    now: datetime | None = None,
    notes: Sequence[str] = (),
) -> Assessment:
    """Judge `result`: no file is read or written. `stem` names this run's report (its point in the trend)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    triage = split_findings(result.tenants, exceptions, now)
    originals = triage.counted + [f for f, _ in triage.accepted]
    changes, stamped = compare(result, originals, previous.run, previous.path, previous.notes)
    counted = stamped[: len(triage.counted)]
    accepted = tuple(zip(stamped[len(triage.counted) :], (e for _, e in triage.accepted), strict=True))
    current = Point(f"{stem}.json", result.started, severity_counts(counted))
    return Assessment(
        assessed=now,
        findings=tuple(counted),
        accepted=accepted,
        expired_exceptions=tuple(triage.expired),
        expired_hits=triage.expired_hits,
        changes=changes,
        verdict=verdict(result, counted),
        trend=(*previous.trend, current),
        notes=(*_notes(triage, exceptions, changes), *notes),
        previous_statuses=previous.statuses,
    )


def split_findings(tenants: Sequence[TenantResult], exceptions: Sequence[AcceptedException], now: datetime) -> Triage:
    """The findings of `tenants` split by the exceptions in force on `now`'s day (UTC).

    The assessment splits the whole run with it, and the Users sheet streamed during a run splits each
    tenant with it as it finishes (audit.report.stream), so the two cannot word a finding differently."""
    names = {t.tenant_id: t.name for t in tenants}
    return apply_exceptions([f for t in tenants for f in t.findings], exceptions, now.astimezone(UTC).date(), names)


def _notes(triage: Triage, exceptions: Sequence[AcceptedException], changes: Changes) -> list[str]:
    notes = []
    for e in triage.expired:
        hits = sum(1 for x in triage.expired_hits.values() if x is e)
        notes.append(
            f"Exception expired on {e.expires.isoformat()} and no longer applies "
            f"({e.source}: {e.describe()}); {hits} finding(s) it covered count again."
        )
    used = {id(e) for _, e in triage.accepted}
    for e in exceptions:
        if id(e) not in used and e not in triage.expired:
            notes.append(f"Exception matched no finding ({e.source}: {e.describe()}); it may be obsolete.")
    if changes.unverified:
        notes.append(
            f"{len(changes.unverified)} finding(s) of the previous report could not be re-checked "
            "this run (tenant failed or check not evaluated); they are not counted as resolved."
        )
    notes.extend(changes.notes)
    return notes
