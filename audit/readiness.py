"""Readiness: can remediation work in this tenant today? A short PASS / WARN / FAIL list, no report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from audit.checks import catalogue, check_info, needing_consent, showing_no_consent
from audit.config import Config
from audit.exitcodes import ExitCode
from audit.models import Scope, Severity, TenantResult, TenantStatus
from audit.runner import RunOptions, audit_tenant, select_tenants

# Roles the audit's own app needs, with what each is for; Directory.Read.All covers the directory ones.
AUDIT_ROLES = {
    "User.Read.All": "list users and soft-deleted users",
    "Organization.Read.All": "read verified domains and subscribed licenses",
    "Application.Read.All": "read the remediation app's consent, roles and credentials",
    "MailboxSettings.Read": "probe each mailbox the way the remediation reaches it",
}
OPTIONAL_ROLES = {
    "Reports.Read.All": "use the mailbox usage report so fewer mailboxes need probing",
    "GroupMember.Read.All": "resolve application access policy scopes",
}
COVERED_BY_DIRECTORY = {"User.Read.All", "Organization.Read.All", "Application.Read.All", "GroupMember.Read.All"}
# What a user check's findings are a share of (CheckInfo.counted_among), in the admin's words.
COUNTED_AMONG = {"deleted_users": "soft-deleted users", "recipients": "addresses listed"}


def tenant_items() -> list[tuple[str, str]]:
    """(check id, item label) of the tenant and app checks, in order of precedence (prerequisites first)."""
    checks = sorted((c for c in catalogue() if c.scope != Scope.USER), key=lambda c: c.precedence)
    return [(c.id, c.readiness or c.title) for c in checks]


def mailbox_checks() -> list[str]:
    """The user checks: each is one "mailboxes:" line, counting the accounts that would fail."""
    return [c.id for c in catalogue() if c.scope == Scope.USER]


@dataclass
class Item:
    status: str  # PASS | WARN | FAIL
    item: str
    detail: str = ""


@dataclass
class TenantReadiness:
    name: str
    tenant_id: str
    ready: bool
    items: list[Item] = field(default_factory=list)


@dataclass
class Readiness:
    tenants: list[TenantReadiness]
    could_not_check: bool = False

    @property
    def exit_code(self) -> int:
        if self.could_not_check:
            return ExitCode.USAGE
        return ExitCode.OK if all(t.ready for t in self.tenants) else ExitCode.FINDINGS


def tenant_readiness(result: TenantResult) -> TenantReadiness:
    items: list[Item] = []
    if result.status == TenantStatus.FAILED or result.snapshot is None:
        items.append(Item("FAIL", "authentication and directory access", result.error or "failed"))
        return TenantReadiness(result.name, result.tenant_id, False, items)
    items.append(Item("PASS", "authentication", "token issued"))
    roles = set(result.snapshot.audit_roles)
    has_directory = "Directory.Read.All" in roles
    missing_roles = False
    for role, why in {**AUDIT_ROLES, **OPTIONAL_ROLES}.items():
        held = (
            role in roles
            or (has_directory and role in COVERED_BY_DIRECTORY)
            or (role == "MailboxSettings.Read" and "MailboxSettings.ReadWrite" in roles)
        )
        if not held:
            missing_roles = True
            status = "FAIL" if role in AUDIT_ROLES else "WARN"
            items.append(Item(status, f"audit app holds {role}", f"missing: grant it to {why}"))
    if not missing_roles:
        items.append(Item("PASS", "audit app permissions", ", ".join(sorted(roles))))

    by_check: dict[str, list] = {}
    for f in result.findings:
        by_check.setdefault(f.check_id, []).append(f)
    skipped = {n.check_id: n.reason for n in result.not_evaluated}
    unconsented = any(check_id in by_check for check_id in showing_no_consent())
    for check_id, label in tenant_items():
        found = by_check.get(check_id, [])
        if unconsented and check_id in needing_consent() and not found:
            # Nothing to read without the enterprise application: the missing consent is the answer.
            items.append(Item("FAIL", label, "no: the app is not consented in this tenant"))
        elif check_id in skipped:
            items.append(Item("WARN", label, f"not evaluated: {skipped[check_id]}"))
        elif not found:
            items.append(Item("PASS", label))
        else:
            worst = max(found, key=lambda f: f.severity.rank)
            status = "FAIL" if worst.severity.rank >= Severity.HIGH.rank else "WARN"
            items.append(Item(status, label, "; ".join(f.evidence for f in found)))

    for check_id in mailbox_checks():
        found = by_check.get(check_id, [])
        if check_id in skipped:
            items.append(Item("WARN", f"mailboxes: {check_id}", f"not evaluated: {skipped[check_id]}"))
        elif found:
            items.append(Item("WARN", f"mailboxes: {check_id}", _would_fail(len(found), *_out_of(result, check_id))))
        else:
            items.append(Item("PASS", f"mailboxes: {check_id}", "none would fail"))
    for reason, count in result.not_assessed.items():
        items.append(Item("WARN", "mailboxes not assessed", f"{count}: {reason}"))
    ready = not any(i.status == "FAIL" for i in items)
    return TenantReadiness(result.name, result.tenant_id, ready, items)


def _out_of(result: TenantResult, check_id: str) -> tuple[int, str]:
    """What a check's findings are counted among: the users it looked at, named as the admin knows them.

    Findings of the user checks are about users read from the directory (probed or settled from the usage
    report alike), so the probe count is no denominator for them.
    """
    snapshot = result.snapshot
    info = check_info(check_id)
    among = info.counted_among if info else ""
    if not among or among == "users":
        return result.users_scanned, "users read"
    return len((snapshot.dataset(among).value if snapshot else None) or []), COUNTED_AMONG.get(among, among)


def _would_fail(count: int, total: int, what: str) -> str:
    if total <= 0:
        return f"{count} would fail"
    return f"{count} would fail ({100.0 * count / total:.1f}% of {total} {what})"


def check_readiness(config: Config, tenant: str | None = None) -> Readiness:
    options = RunOptions(tenant=tenant, email=False)
    results = [audit_tenant(t, config, options, recipients=None) for t in select_tenants(config, options)]
    readiness = Readiness([tenant_readiness(r) for r in results])
    readiness.could_not_check = any(r.status == TenantStatus.FAILED for r in results)
    return readiness


def render(report: Readiness, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(
            {"ready": report.exit_code == ExitCode.OK, "tenants": [asdict(t) for t in report.tenants]}, indent=2
        )
    lines = []
    for t in report.tenants:
        verdict = "READY" if t.ready else "NOT READY"
        lines.append(f"{t.name} ({t.tenant_id}): {verdict}")
        width = max(len(i.item) for i in t.items)
        for i in t.items:
            lines.append(f"  {i.status:<4}  {i.item:<{width}}  {i.detail}".rstrip())
        lines.append("")
    return "\n".join(lines).rstrip()
