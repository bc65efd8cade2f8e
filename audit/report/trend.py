"""Open findings by severity over the earlier reports in the folder: the Summary's trend chart and the
JSON report's "trend" key.

A weekly report is read against the weeks before it. Each earlier JSON report of the family in the
output folder gives one point: when its run started and how many findings counted in it, by severity.
Reports that cannot be read are left out (the Summary's notes already name them, from the comparison
with the previous report).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from audit.report.cells import iso
from audit.report.changes import previous_reports
from audit.report.jsonreport import ReportError, read_json_report
from audit.report.verdict import SEVERITIES

TREND_POINTS = 12  # this run and the 11 reports before it


@dataclass(frozen=True)
class Point:
    report: str  # file name of the JSON report
    started: datetime
    open: Mapping[str, int]  # severity -> findings that counted

    def as_json(self) -> dict:
        return {"report": self.report, "started": iso(self.started), **{s: self.open.get(s, 0) for s in SEVERITIES}}


def _point(path: Path) -> Point | None:
    # The same guarded reader as the comparison with the previous report: size cap, field types, nesting.
    try:
        run, counted = read_json_report(path)
    except ReportError:
        return None
    counts = Counter(str(f.severity) for f in counted)
    return Point(path.name, run.started, {s: counts.get(s, 0) for s in SEVERITIES})


def earlier_points(out_dir: Path, stem: str, started: datetime, points: int = TREND_POINTS) -> list[Point]:
    """Up to points-1 earlier reports of out_dir (not `stem`, none started after `started`), oldest first."""
    earlier = previous_reports(Path(out_dir), stem)  # newest first, no link followed
    found: list[Point] = []
    for path in earlier:
        if len(found) >= points - 1:
            break
        point = _point(path)
        if point is not None and point.started <= started:
            found.append(point)
    return sorted(found, key=lambda p: p.started)


def trend(out_dir: Path, current: Point, points: int = TREND_POINTS) -> list[Point]:
    """`current` and up to points-1 earlier reports of out_dir, oldest first."""
    return [*earlier_points(out_dir, Path(current.report).stem, current.started, points), current]
