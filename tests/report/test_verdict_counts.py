"""severity_counts(): every severity is present, most severe first, and an absent one counts 0, not None."""

from __future__ import annotations

from audit.models import Finding, Severity
from audit.report.verdict import SEVERITIES, severity_counts


def finding(severity: Severity, user_id: str) -> Finding:
    return Finding("t", "no-exchange-license", severity, None, user_id, None, "e", "c", "f", "evidence")


def test_every_severity_is_counted_and_absent_ones_are_zero():
    counts = severity_counts([finding(Severity.HIGH, "a"), finding(Severity.HIGH, "b"), finding(Severity.LOW, "c")])
    assert counts == {"critical": 0, "high": 2, "medium": 0, "low": 1}
    assert all(type(n) is int for n in counts.values())
    assert list(counts) == list(SEVERITIES) == ["critical", "high", "medium", "low"]
    assert severity_counts([]) == dict.fromkeys(SEVERITIES, 0)
