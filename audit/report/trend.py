"""Open findings by severity over the earlier reports in the folder: the Summary's trend chart and the
JSON report's "trend" key.

A weekly report is read against the weeks before it. Each earlier JSON report of the family in the
output folder gives one point: when its run started and how many findings counted in it, by severity.
Reports that cannot be read are left out (the Summary's notes already name them, from the comparison
with the previous report).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from audit.report.cells import iso, parse_time
from audit.report.changes import FAMILY, OTHER_FAMILIES
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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        started = parse_time(data["run"]["started"])
        counts = Counter(str(f["severity"]) for f in data["findings"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if started is None:
        return None
    return Point(path.name, started, {s: counts.get(s, 0) for s in SEVERITIES})


def trend(out_dir: Path, current: Point, points: int = TREND_POINTS) -> list[Point]:
    """`current` and up to points-1 earlier reports of out_dir, oldest first."""
    earlier = [
        p
        for p in Path(out_dir).glob(f"{FAMILY}*.json")
        if p.name != current.report and p.is_file() and not p.name.startswith(OTHER_FAMILIES)
    ]
    earlier.sort(key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    found: list[Point] = []
    for path in earlier:
        if len(found) >= points - 1:
            break
        point = _point(path)
        if point is not None and point.started <= current.started:
            found.append(point)
    return sorted(found, key=lambda p: p.started) + [current]
