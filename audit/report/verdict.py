"""The one-glance answer: is it safe to rely on remediation? SAFE, NOT SAFE or INCOMPLETE, and why.

A run that could not assess everything never reads SAFE: every failed tenant, check that could not be
evaluated, user that could not be assessed and gap between the directory count and the users read
is a Gap, listed with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from audit.checks import needing_consent, showing_no_consent
from audit.models import Finding, NotEvaluated, RunResult, TenantResult, TenantStatus
from audit.report.tally import SEVERITIES, counts_text, severity_counts

__all__ = ["INCOMPLETE", "NOT_SAFE", "SAFE", "SEVERITIES", "Gap", "Verdict", "gaps", "severity_counts", "verdict"]

SAFE, NOT_SAFE, INCOMPLETE = "SAFE", "NOT SAFE", "INCOMPLETE"


@dataclass(frozen=True)
class Gap:
    tenant: str
    what: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    word: str
    reason: str
    gaps: tuple[Gap, ...]


def gaps(result: RunResult) -> list[Gap]:
    found: list[Gap] = []
    if not result.tenants:
        found.append(Gap("all tenants", "no tenant audited", "the run selected no tenant"))
    elif not result.probes:
        found.append(
            Gap(
                "all tenants",
                "mailboxes not probed",
                "mailbox probes were switched off, so mailboxes were judged from directory data "
                "only; run with probes to confirm them",
            )
        )
    for t in result.tenants:
        if t.status == TenantStatus.FAILED:
            found.append(Gap(t.name, "tenant not audited", t.error or "failed without a reason"))
            continue
        # A partial tenant is a gap of its own unless users it could not assess explain it (a count of 0 does not).
        if t.status == TenantStatus.PARTIAL and (t.error or not any(t.not_assessed.values())):
            found.append(Gap(t.name, "tenant only partly read", t.error or "some data could not be read"))
        unconsented = any(f.check_id in showing_no_consent() for f in t.findings)
        for n in t.not_evaluated:
            if unconsented and n.check_id in needing_consent():
                continue  # nothing to evaluate until the app is consented, and that is already a finding
            if _covered_by_home_tenant(n, result):
                continue  # the app registration is checked once, in its home tenant's audit of this run
            found.append(Gap(t.name, f"check {n.check_id} not evaluated", n.reason))
        for reason, count in sorted(t.not_assessed.items()):
            if count:
                found.append(Gap(t.name, f"{count} user{'s' if count != 1 else ''} not assessed", reason))
        if t.users_in_directory is not None and t.users_in_directory > t.users_scanned:
            missing = t.users_in_directory - t.users_scanned
            found.append(
                Gap(
                    t.name,
                    f"{missing} user{'s' if missing != 1 else ''} not read",
                    f"the directory holds {t.users_in_directory} users, but only {t.users_scanned} were enumerated",
                )
            )
    return found


def _covered_by_home_tenant(n: NotEvaluated, result: RunResult) -> bool:
    """The app registration is checked once, in its home tenant's audit, when that tenant is in this run."""
    if not n.read_in:
        return False
    return any(t.tenant_id.lower() == n.read_in.lower() and t.status != TenantStatus.FAILED for t in result.tenants)


def verdict(result: RunResult, counted: Sequence[Finding]) -> Verdict:
    found = tuple(gaps(result))
    counts = severity_counts(counted)
    detail = counts_text(counts)
    incomplete = _incomplete_text(result, found)
    if counted:
        reason = f"{len(counted)} finding{'s' if len(counted) != 1 else ''} would make remediation fail ({detail})."
        if found:
            reason += f" Also incomplete: {incomplete}; more may be hidden."
        return Verdict(NOT_SAFE, reason, found)
    if found:
        return Verdict(
            INCOMPLETE,
            f"No findings in what was assessed, but {incomplete}. Do not read this "
            "as clean: see 'Could not be assessed' below.",
            found,
        )
    return Verdict(
        SAFE, "Every user of every tenant was assessed and nothing found would make remediation fail.", found
    )


def _incomplete_text(result: RunResult, found: Sequence[Gap]) -> str:
    failed = sum(1 for t in result.tenants if t.status == TenantStatus.FAILED)
    parts = []
    if failed:
        parts.append(f"{failed} tenant{'s' if failed != 1 else ''} failed")
    other = len(found) - failed
    if other:
        parts.append(f"{other} other item{'s' if other != 1 else ''} could not be assessed")
    return " and ".join(parts)


def tenant_gaps(verdict_: Verdict, tenant: str) -> list[Gap]:
    """The gaps of one tenant, including those that hold for every tenant (e.g. probes switched off)."""
    return [g for g in verdict_.gaps if g.tenant in (tenant, "all tenants")]


def tenant_verdict(tenant: TenantResult, counted: Sequence[Finding], verdict_: Verdict) -> str:
    """SAFE, NOT SAFE or INCOMPLETE for one tenant, from the same findings and gaps as the run's verdict."""
    if any(f.tenant_id.lower() == tenant.tenant_id.lower() for f in counted):
        return NOT_SAFE
    return INCOMPLETE if tenant_gaps(verdict_, tenant.name) else SAFE


READ_FULLY, READ_PARTLY, READ_FAILED = "completely", "partly", "not read"


def tenant_read(tenant: TenantResult, verdict_: Verdict) -> str:
    """Whether a tenant was read completely: 'not read' (failed), 'partly' (it has gaps) or 'completely'."""
    if tenant.status == TenantStatus.FAILED:
        return READ_FAILED
    return READ_PARTLY if tenant_gaps(verdict_, tenant.name) else READ_FULLY
