"""The report's tables as plain rows: one function per sheet, no spreadsheet code.

Each table is a list of Columns and an iterable of rows of plain values (str, int, datetime, date,
Severity, None). The workbook writer and the CSV writer turn them into cells; this module never
touches openpyxl, so the same rows feed both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from audit.checks.app_credential_expiring import sign_in_credentials, signing_only
from audit.checks.app_missing_permission import REQUIRED_ROLES
from audit.models import CheckInfo, Finding, MailboxProbe, RunResult, TenantResult, User, needs_text
from audit.report.cells import excel_time
from audit.report.changes import Changes
from audit.report.exceptions import AcceptedException

# Best first: the capabilityStatus values of an assigned plan.
PLAN_STATUS_ORDER = ("Enabled", "Warning", "Suspended", "LockedOut", "Deleted")


@dataclass(frozen=True)
class Column:
    header: str
    kind: str = "text"  # text | wrap | id | name | int | time | date | severity
    width: int = 0  # 0: sized from the content, within the kind's limits


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[Column]
    rows: Iterable[Sequence]
    printed: int = 0  # how many leading columns go on paper; 0: all


def reordered(table: Table, headers: Sequence[str], printed: int = 0) -> Table:
    """The same table with its columns in another order (the workbook's), rows mapped lazily."""
    index = [[c.header for c in table.columns].index(h) for h in headers]
    columns = [table.columns[i] for i in index]
    return Table(table.name, columns, ([row[i] for i in index] for row in table.rows), printed)


@dataclass(frozen=True)
class Lookups:
    """Licence names and the Exchange plans that give a mailbox (from audit.licensing)."""

    sku_part_number: Callable[[str], str | None]
    mailbox_plan_ids: frozenset[str] | None  # None: tell mailbox plans by service == "exchange"

    @classmethod
    def default(cls) -> Lookups:
        try:
            from audit import licensing
        except ImportError:
            return cls(lambda _sku: None, None)
        return cls(licensing.sku_part_number, frozenset(licensing.MAILBOX_PLAN_IDS))


def tenant_names(result: RunResult) -> dict[str, str]:
    return {t.tenant_id: t.name for t in result.tenants}


FINDING_COLUMNS = [
    Column("Tenant", "text", 11),
    Column("Tenant id", "id"),
    Column("Check", "wrap", 22),
    Column("Severity", "severity", 9),
    Column("User principal name", "wrap", 24),
    Column("Display name"),
    Column("Object id", "id"),
    Column("Predicted error", "wrap", 18),
    Column("Cause", "wrap", 30),
    Column("Fix", "wrap", 40),
    Column("Evidence", "wrap", 22),
    Column("First seen (UTC)", "time"),
    Column("Note", "wrap", 30),
]
# The Findings sheet puts what an admin acts on first, and prints only that (one page wide, readable);
# the CSV keeps FINDING_COLUMNS' order.
FINDINGS_SHEET = (
    "Severity",
    "Tenant",
    "Check",
    "User principal name",
    "Predicted error",
    "Cause",
    "Fix",
    "Evidence",
    "Display name",
    "First seen (UTC)",
    "Note",
    "Object id",
    "Tenant id",
)
FINDINGS_PRINTED = 8


def _order(f: Finding, names: Mapping[str, str]) -> tuple:
    return (
        -f.severity.rank,
        names.get(f.tenant_id, f.tenant_id).lower(),
        f.check_id,
        (f.user_principal_name or "").lower(),
    )


def sort_findings(findings: Iterable[Finding], names: Mapping[str, str]) -> list[Finding]:
    return sorted(findings, key=lambda f: _order(f, names))


def findings_table(
    findings: Sequence[Finding],
    names: Mapping[str, str],
    expired_hits: Mapping[tuple[str, str, str], AcceptedException],
) -> Table:
    def rows() -> Iterator[list]:
        for f in sort_findings(findings, names):
            stale = expired_hits.get(f.key)
            note = f"exception expired {stale.expires.isoformat()} (owner {stale.owner})" if stale else None
            yield [
                names.get(f.tenant_id, f.tenant_id),
                f.tenant_id,
                f.check_id,
                f.severity,
                f.user_principal_name,
                f.display_name,
                f.user_id,
                f.predicted_error,
                f.cause,
                f.fix,
                f.evidence,
                excel_time(f.first_seen),
                note,
            ]

    return Table("Findings", FINDING_COLUMNS, rows())


USERS_SHEET = "Users"
USER_COLUMNS = [
    Column("Tenant"),
    Column("User principal name", "name"),
    Column("Display name"),
    Column("Object id", "id"),
    Column("Enabled"),
    Column("Type"),
    Column("Licenses", "wrap", 40),
    Column("Exchange plan"),
    Column("Mailbox"),
    Column("Mailbox purpose"),
    Column("Mailbox source"),
    Column("Hybrid sync"),
    Column("Created (UTC)", "date"),
    Column("Deleted (UTC)", "date"),
    Column("Findings", "wrap", 30),
]


def users_table(result: RunResult, findings: Iterable[Finding], accepted: Iterable[Finding], lookups: Lookups) -> Table:
    """Every account read, one row each, generated lazily (a tenant can hold 100,000 users)."""
    checks = user_checks(findings, accepted)
    return Table(USERS_SHEET, USER_COLUMNS, (row for t in result.tenants for row in user_rows(t, checks, lookups)))


def user_checks(findings: Iterable[Finding], accepted: Iterable[Finding]) -> dict[tuple[str, str], list[str]]:
    """The Users sheet's Findings column: (tenant id, user id) -> the checks that counted, then those accepted."""
    checks: dict[tuple[str, str], list[str]] = {}
    for f in findings:
        if f.user_id:
            checks.setdefault((f.tenant_id, f.user_id), []).append(f.check_id)
    for f in accepted:
        if f.user_id:
            checks.setdefault((f.tenant_id, f.user_id), []).append(f"{f.check_id} (accepted)")
    return checks


def user_rows(t: TenantResult, checks: Mapping[tuple[str, str], list[str]], lookups: Lookups) -> Iterator[list]:
    """One tenant's rows of the Users sheet: its users, then its soft-deleted users (none without a snapshot)."""
    snap = t.snapshot
    if snap is None:
        return
    sku_names = {(s.get("skuId") or "").lower(): s.get("skuPartNumber") for s in snap.subscribed_skus.value or []}
    probes = snap.probes.value
    for user in [*(snap.users.value or []), *(snap.deleted_users.value or [])]:
        probe = probes.get(user.id) if probes is not None else None
        yield [
            t.name,
            user.upn,
            user.display_name,
            user.id,
            user.enabled,
            user.user_type,
            licence_text(user, lookups, sku_names),
            exchange_plan(user, lookups),
            *probe_cells(probe),
            user.sync_enabled,
            excel_time(user.created),
            excel_time(user.deleted),
            ", ".join(checks.get((t.tenant_id, user.id), [])),
        ]


def licence_text(user: User, lookups: Lookups, sku_names: Mapping[str, str | None]) -> str:
    parts = []
    for lic in user.licenses:
        name = lookups.sku_part_number(lic.sku_id) or sku_names.get(lic.sku_id.lower()) or lic.sku_id
        how = {s.assigned_by_group is not None for s in user.license_states if s.sku_id == lic.sku_id}
        if how == {True}:
            name += " (group)"
        elif how == {True, False}:
            name += " (direct + group)"
        parts.append(name)
    return ", ".join(parts)


def exchange_plan(user: User, lookups: Lookups) -> str:
    if lookups.mailbox_plan_ids is None:
        statuses = {p.status for p in user.plans if p.service.lower() == "exchange"}
    else:
        statuses = {p.status for p in user.plans if p.plan_id.lower() in lookups.mailbox_plan_ids}
    for status in PLAN_STATUS_ORDER:
        if status in statuses:
            return status
    return sorted(statuses)[0] if statuses else "none"


def probe_cells(probe: MailboxProbe | None) -> list:
    if probe is None:
        return [None, None, "not probed"]
    outcome = probe.outcome.replace("_", " ")
    if probe.code:
        outcome += f" ({probe.code})"
    source = "usage report" if probe.source == "usage_report" else probe.source.replace("_", " ")
    return [outcome, probe.purpose, source]


TENANT_COLUMNS = [
    Column("Tenant"),
    Column("Tenant id", "id"),
    Column("Status"),
    Column("Remediation app consent", "wrap", 30),
    Column("App enabled"),
    Column("Mail.ReadWrite"),
    Column("Organization.Read.All"),
    Column("Sign-in audience"),
    Column("Verified domains", "wrap", 40),
    Column("Next credential expiry (UTC)", "time"),
    Column("Last credential expiry (UTC)", "time"),
    Column("Credentials", "wrap", 50),
    Column("Notes", "wrap", 50),
]


def tenant_table(result: RunResult) -> Table:
    return Table("Tenant", TENANT_COLUMNS, [tenant_row(t) for t in result.tenants])


def tenant_row(t: TenantResult) -> list:
    snap = t.snapshot
    if snap is None:
        unknown = f"unknown: {t.error or 'the tenant could not be read'}"
        return [
            t.name,
            t.tenant_id,
            str(t.status),
            unknown,
            "unknown",
            "unknown",
            "unknown",
            "unknown",
            None,
            None,
            None,
            None,
            t.error,
        ]
    notes = []
    sp = snap.remediation_sp
    if not sp.ok:
        consent, enabled = f"unknown: {sp.error}", "unknown"
    elif sp.value is None:
        consent, enabled = "absent (no service principal: the app was never consented here)", "n/a"
    else:
        consent = "present"
        enabled = "yes" if sp.value.get("accountEnabled", True) else "no"
        by_microsoft = sp.value.get("disabledByMicrosoftStatus")
        if (by_microsoft and str(by_microsoft).lower() != "notdisabled") or sp.value.get("isDisabled") is True:
            enabled = f"no: disabled by Microsoft ({by_microsoft or 'isDisabled'})"
    roles = [_role_state(snap.remediation_roles, snap.graph_sp_id, role) for role in REQUIRED_ROLES.values()]
    if not snap.remediation_roles.ok and sp.ok and sp.value is not None:
        notes.append(f"permissions unknown: {snap.remediation_roles.error}")

    app = snap.application
    audience = None
    if app.ok and app.value:
        audience = app.value.get("signInAudience")
    elif sp.ok and sp.value:
        audience = sp.value.get("signInAudience")
    domains = None
    if snap.organization.ok and snap.organization.value:
        domains = ", ".join(d.get("name", "") for d in snap.organization.value.get("verifiedDomains") or [])
    elif not snap.organization.ok:
        notes.append(f"verified domains unknown: {snap.organization.error}")

    next_expiry = last_expiry = None
    if app.ok and app.value:
        creds, next_expiry, last_expiry = credential_summary(app.value, snap.collected_at)
    elif app.ok:
        creds = "no app registration found in this tenant"
    else:
        creds = f"not readable: {app.error}"
    if t.error:
        notes.append(t.error)
    return [
        t.name,
        t.tenant_id,
        str(t.status),
        consent,
        enabled,
        *roles,
        audience or "unknown",
        domains,
        next_expiry,
        last_expiry,
        creds,
        "; ".join(notes) or None,
    ]


def _role_state(assignments, graph_sp_id, role_id: str) -> str:
    if not assignments.ok:
        return "unknown"
    graph_id = graph_sp_id.value if graph_sp_id.ok else None
    for a in assignments.value or []:
        if (a.get("appRoleId") or "").lower() == role_id and (
            graph_id is None or (a.get("resourceId") or "").lower() == graph_id.lower()
        ):
            return "present"
    return "missing"


def credential_summary(app: Mapping, now) -> tuple[str, object, object]:
    """Text listing each secret/certificate, the next expiry still ahead, and the last expiry."""
    items = []
    for kind, c in sign_in_credentials(app):  # the same credentials the expiry check judges
        name = c.get("displayName") or c.get("keyId") or "?"
        items.append((excel_time(c.get("endDateTime")), kind, name))
    signing = sum(1 for c in app.get("keyCredentials") or () if signing_only(c))
    aside = (
        f"; {signing} signing-only certificate{'s' if signing != 1 else ''} (cannot sign the app in)" if signing else ""
    )
    if not items:
        return "no secrets or certificates" + aside, None, None
    now_naive = excel_time(now)
    ends = [end for end, _, _ in items if end is not None]
    ahead = [end for end in ends if now_naive is None or end >= now_naive]
    text = "; ".join(
        f"{kind} '{name}' until {end:%Y-%m-%d}" if end else f"{kind} '{name}' (no end date)"
        for end, kind, name in sorted(items, key=lambda i: (i[0] is None, i[0] or 0))
    )
    text += aside
    return text, (min(ahead) if ahead else None), (max(ends) if ends else None)


CHANGE_COLUMNS = [
    Column("Change"),
    Column("Tenant"),
    Column("Tenant id", "id"),
    Column("Check"),
    Column("Severity", "severity"),
    Column("User principal name"),
    Column("Display name"),
    Column("Object id", "id"),
    Column("Predicted error", "wrap", 34),
    Column("First seen (UTC)", "time"),
    Column("Accepted"),
]
CHANGE_ORDER = ("new", "resolved", "not re-checked", "still open")


def changes_table(changes: Changes, names: Mapping[str, str], accepted_keys: set) -> Table:
    groups = (
        ("new", changes.new),
        ("resolved", changes.resolved),
        ("not re-checked", changes.unverified),
        ("still open", changes.still_open),
    )

    def rows() -> Iterator[list]:
        for label, items in groups:
            for f in sort_findings(items, names):
                accepted = (
                    "n/a" if label in ("resolved", "not re-checked") else ("yes" if f.key in accepted_keys else "no")
                )
                yield [
                    label,
                    names.get(f.tenant_id, f.tenant_id),
                    f.tenant_id,
                    f.check_id,
                    f.severity,
                    f.user_principal_name,
                    f.display_name,
                    f.user_id,
                    f.predicted_error,
                    excel_time(f.first_seen),
                    accepted,
                ]

    return Table("Changes", CHANGE_COLUMNS, rows())


ACCEPTED_COLUMNS = [
    Column("Tenant"),
    Column("Tenant id", "id"),
    Column("Check"),
    Column("Severity", "severity"),
    Column("User principal name"),
    Column("Display name"),
    Column("Object id", "id"),
    Column("Predicted error", "wrap", 34),
    Column("Reason", "wrap", 40),
    Column("Owner"),
    Column("Expires", "date"),
    Column("Exception", "wrap", 30),
    Column("First seen (UTC)", "time"),
]


def accepted_table(accepted: Sequence[tuple[Finding, AcceptedException]], names: Mapping[str, str]) -> Table:
    rows = [
        [
            names.get(f.tenant_id, f.tenant_id),
            f.tenant_id,
            f.check_id,
            f.severity,
            f.user_principal_name,
            f.display_name,
            f.user_id,
            f.predicted_error,
            e.reason,
            e.owner,
            e.expires,
            e.source,
            excel_time(f.first_seen),
        ]
        for f, e in sorted(accepted, key=lambda pair: _order(pair[0], names))
    ]
    return Table("Accepted", ACCEPTED_COLUMNS, rows)


CHECK_COLUMNS = [
    Column("Check"),
    Column("Title", "wrap", 40),
    Column("Severity", "severity"),
    Column("Predicts", "wrap", 34),
    Column("Cause", "wrap", 50),
    Column("Fix", "wrap", 60),
    Column("Needs (permission or input)", "wrap", 30),
]


def checks_table(catalogue: Sequence[CheckInfo]) -> Table:
    rows = [
        [c.id, c.title, c.severity, c.predicts, c.cause, c.fix, needs_text(c.needs + c.reads) or None]
        for c in catalogue
    ]
    return Table("Checks", CHECK_COLUMNS, rows)
