"""Finding counts: per severity for any list of findings, and for the Summary sheet per tenant and check.

The one place findings are tallied; the Summary's tables are tallied once with pandas instead of rescanning
per tenant and check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from audit.models import Finding, Severity

SEVERITIES = tuple(s.value for s in Severity.worst_first())


def severity_counts(findings: Iterable[Finding]) -> dict[str, int]:
    """How many findings of each severity, worst first, every severity present (0 when none)."""
    counts = Counter(str(f.severity) for f in findings)
    return {s: counts.get(s, 0) for s in SEVERITIES}


def counts_text(counts: dict[str, int]) -> str:
    """'2 critical, 1 high': the severities that occur, worst first."""
    return ", ".join(f"{counts[s]} {s}" for s in SEVERITIES if counts.get(s))


@dataclass(frozen=True)
class Tally:
    by_tenant: pd.DataFrame  # index tenant id (lower-case); columns the severities and "accepted"
    by_check: pd.DataFrame  # index check id; columns "findings" and "accepted"

    def tenant(self, tenant_id: str) -> dict[str, int]:
        key = tenant_id.lower()
        row = self.by_tenant.loc[key] if key in self.by_tenant.index else None
        return {c: int(row[c]) if row is not None else 0 for c in (*SEVERITIES, "accepted")}

    def check(self, check_id: str) -> tuple[int, int]:
        if check_id not in self.by_check.index:
            return 0, 0
        row = self.by_check.loc[check_id]
        return int(row["findings"]), int(row["accepted"])


def tally(counted: Sequence[Finding], accepted: Sequence[Finding]) -> Tally:
    frame = pd.DataFrame(
        [(f.tenant_id.lower(), f.check_id, str(f.severity), False) for f in counted]
        + [(f.tenant_id.lower(), f.check_id, str(f.severity), True) for f in accepted],
        columns=["tenant", "check", "severity", "accepted"],
    )
    if frame.empty:
        return Tally(pd.DataFrame(columns=[*SEVERITIES, "accepted"]), pd.DataFrame(columns=["findings", "accepted"]))
    open_ = frame[~frame["accepted"]]
    by_tenant = (
        open_.groupby(["tenant", "severity"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=list(SEVERITIES), fill_value=0)
    )
    by_tenant = by_tenant.join(frame.groupby("tenant")["accepted"].sum().rename("accepted"), how="outer")
    by_check = pd.DataFrame(
        {
            "findings": open_.groupby("check").size(),
            "accepted": frame[frame["accepted"]].groupby("check").size(),
        }
    )
    return Tally(by_tenant.fillna(0).astype(int), by_check.fillna(0).astype(int))
