"""What every check shares: the run context, the "cannot decide" signal, and Finding builders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from audit.config import RemediationAppConfig
from audit.models import CheckInfo, Finding, Severity, TenantSnapshot, User


@dataclass(frozen=True)
class CheckContext:
    """What a check may know beyond the snapshot: the clock and the configuration around the tenant."""

    now: datetime
    tenant_count: int  # tenants configured in this run's config
    configured_tenant_ids: frozenset[str]  # lower-case
    remediation_app: RemediationAppConfig
    domains: tuple[str, ...]  # domains the remediation product is set up for in this tenant
    other_domains: frozenset[str] = frozenset()  # lower-case domains configured for the run's other tenants
    first_tenant: bool = True  # recipients of no configured tenant's domain are reported once, here


class CheckUnavailable(Exception):
    """Raised by a check that cannot decide from the data it has; reported as not evaluated."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def user_finding(
    check: CheckInfo, snapshot: TenantSnapshot, user: User, evidence: str, severity: Severity | None = None
) -> Finding:
    return Finding(
        tenant_id=snapshot.tenant_id,
        check_id=check.id,
        severity=severity or check.severity,
        user_principal_name=user.upn,
        user_id=user.id,
        display_name=user.display_name,
        predicted_error=check.predicts,
        cause=check.cause,
        fix=check.fix,
        evidence=evidence,
    )


def tenant_finding(
    check: CheckInfo,
    snapshot: TenantSnapshot,
    evidence: str,
    severity: Severity | None = None,
    subject: str | None = None,
) -> Finding:
    """A finding about a tenant setting: the user fields stay empty.

    `subject` names the role, domain or credential concerned when a check reports several per tenant; it is
    the finding's identity across runs, so rewording the evidence keeps its first_seen.
    """
    return Finding(
        tenant_id=snapshot.tenant_id,
        check_id=check.id,
        severity=severity or check.severity,
        user_principal_name=None,
        user_id=None,
        display_name=None,
        predicted_error=check.predicts,
        cause=check.cause,
        fix=check.fix,
        evidence=evidence,
        subject=subject.lower() if subject else None,
    )


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(value: str | None) -> datetime | None:
    """A Graph timestamp (ISO-8601, 'Z', up to 7 fractional digits) as an aware UTC datetime."""
    if not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value.strip()))
    except ValueError:
        return None


def day(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%d")


def worst(severities: list[Severity]) -> Severity:
    return max(severities, key=lambda s: s.rank)
