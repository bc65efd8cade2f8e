"""Triage of a remediation error log: for each listed mailbox, the most likely cause and its fix.

The remediation product's console exports, for a remediation, the mailboxes it could not act on with
the error it met ("Resource is Not Found", "Remediation Failed - Unknown Reason", "The Requested User
is Invalid", "The Mailbox is either Inactive, Soft-Deleted, or is Hosted On-Premise"). `triage` reads
such a file, looks each mailbox up in its tenant with the audit's own collection and checks (only the
listed mailboxes: the directory is never enumerated), and explains every row:

    result = triage(config, Path("remediation-errors.csv"), tenant=None)
    result.files      # the workbook and JSON written (stem etd-audit-triage-<UTC timestamp>)
    result.exit_code

Routing: a mailbox goes to the configured tenant whose configured domains (tenants[].domains), else
verified domains, hold its domain; `tenant=` forces one tenant; an address in no tenant's domains is
looked up in every tenant and explained where it is found.

Every row gets an outcome:
- "fix in the tenant": a check of the audit explains the error (its evidence and fix are given);
- "nothing to fix": explained by something that needs no change in the tenant (the owner moved or
  deleted the message; a guest account);
- "no cause found": the tenant shows nothing today that explains the error (it may have been fixed
  since, or been a passing fault); the evidence says what was looked at;
- "unknown error": the error text is none of the four documented errors;
- "not assessed": the tenant or the mailbox could not be read;
- "no address": the row names no mailbox.

Exit codes (the same meanings as an audit run):
- 0: every line was read, every mailbox assessed, and no row has a cause that needs fixing in the
  tenant (rows without a cause, or with an unknown error text, are reported but need no tenant change);
- 1: at least one row has a cause to fix in the tenant;
- 2: the input cannot be used (raised as audit.csvin.InputError, e.g. empty, binary, no address or
  error column) or no tenant could be signed in to;
- 3: incomplete: a line of the file could not be read, a tenant could not be read, or a mailbox could
  not be assessed. This wins over 1, as in an audit run.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from openpyxl.cell import WriteOnlyCell

from audit import __version__
from audit.auth import AuthError, TokenProvider
from audit.checks import catalogue, check_info, explaining, run_checks
from audit.checks._facts import SkuIndex, describe_licences, describe_probe, normalize_address, user_addresses
from audit.collect import collect_tenant
from audit.config import Config, TenantConfig
from audit.csvin import ADDRESS_HINT, ERROR_COLUMNS, InputError, Table, address_column, content_column, read_table
from audit.exitcodes import ExitCode
from audit.graph import GraphClient, GraphError
from audit.models import (
    MAILBOX_INACTIVE,
    RESOURCE_NOT_FOUND,
    UNKNOWN_REASON,
    USER_INVALID,
    Finding,
    MailboxProbe,
    NotEvaluated,
    Scope,
    Severity,
    TenantSnapshot,
    User,
)
from audit.report import files as fs
from audit.report.cells import excel_time, iso, text_cell
from audit.report.jsonreport import dump
from audit.report.tables import Column
from audit.report.tables import Table as SheetTable
from audit.report.workbook import SheetWriter, new_workbook, section, text_lines, write_table
from audit.report.writer import write_csv
from audit.runner import RunOptions, select_tenants
from audit.session import check_context, connect

log = logging.getLogger("audit")

STEM_PREFIX = "etd-audit-triage-"
FORMATS = ("xlsx", "json", "csv")

EMAIL_LIKE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_INSIDE = re.compile(r"[^\s<>\"',;:()\[\]]+@[^\s<>\"',;:()\[\]]+\.[A-Za-z]{2,63}")

# The four documented errors, recognised from their distinctive words after lower-casing and turning
# punctuation into spaces ("Remediation Failed. Unknown Reason" == "remediation failed - unknown reason").
ERROR_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        MAILBOX_INACTIVE,
        ("mailbox is either inactive", "inactive soft deleted", "hosted on premise", "soft deleted or is hosted"),
    ),
    (USER_INVALID, ("requested user is invalid", "user is invalid")),
    (UNKNOWN_REASON, ("remediation failed unknown reason", "failed unknown reason", "unknown reason")),
    (RESOURCE_NOT_FOUND, ("resource is not found", "resource not found", "resource could not be discovered")),
)


class Outcome(StrEnum):
    FIX = "fix in the tenant"
    NOTHING = "nothing to fix"
    UNEXPLAINED = "no cause found"
    UNKNOWN_ERROR = "unknown error"
    NOT_ASSESSED = "not assessed"
    NO_ADDRESS = "no address"


@dataclass(frozen=True)
class Diagnosis:
    cause: str  # a short label: the check's title, or one of the triage's own causes
    check_id: str  # the audit check that explains it, "" when none does
    evidence: str
    fix: str
    outcome: Outcome


@dataclass(frozen=True)
class TriagedRow:
    row: int  # 1 = first data row of the file
    values: dict[str, str]  # the row as read, keyed by the header as written
    address: str  # normalised; "" when the row names no usable address
    error: str  # the error text as written
    error_kind: str | None  # one of the four documented errors, None when not recognised
    tenant: str  # name of the tenant the row was explained in, "" when none
    diagnosis: Diagnosis


@dataclass(frozen=True)
class TenantLookup:
    name: str
    tenant_id: str
    status: str  # ok | partial | failed
    error: str | None
    looked_up: int  # addresses looked up in this tenant


@dataclass(frozen=True)
class TriageResult:
    log_path: Path
    header: list[str]
    rows: list[TriagedRow]
    unreadable: list[tuple[int, str]]  # (line number, why)
    tenants: list[TenantLookup]
    files: list[Path]
    exit_code: int


# ---------------------------------------------------------------------------------------------------
# Reading the log


def mailbox_address(cell: str | None) -> str:
    """The address in a cell ("smtp:A@B.example", "Ann <a@b.example>"), lower-cased; "" when there is none."""
    address = normalize_address(cell)
    if EMAIL_LIKE.match(address):
        return address
    inside = EMAIL_INSIDE.search(address)
    return inside.group(0) if inside else ""


def error_kind(text: str | None) -> str | None:
    """Which documented error the text is, whatever its case and punctuation; None when none."""
    squashed = " ".join(re.sub(r"[^a-z0-9]+", " ", (text or "").lower()).split())
    for kind, patterns in ERROR_PATTERNS:
        if any(p in squashed for p in patterns):
            return kind
    return None


@dataclass(frozen=True)
class ErrorLog:
    table: Table
    address_column: str
    error_column: str


def read_error_log(path: str | Path) -> ErrorLog:
    """The log as a table with its address and error columns found, or InputError saying what to do."""
    table = read_table(path)
    headers = ", ".join(f"'{h}'" for h in table.header) or "(none)"
    error_column = table.column(ERROR_COLUMNS) or content_column(table, error_kind)
    mailbox_column = address_column(table, exclude=[error_column or ""])
    if mailbox_column is None:
        raise InputError(f"{table.path}: no address column among {headers}. {ADDRESS_HINT}")
    if error_column is None:
        raise InputError(
            f"{table.path}: no remediation error column among {headers}. Name the column "
            "holding the error text 'Remediation Error' (or 'Error')."
        )
    if not table.rows and not table.bad_rows:
        raise InputError(f"{table.path}: the file has a header but no rows to triage.")
    return ErrorLog(table, mailbox_column, error_column)


# ---------------------------------------------------------------------------------------------------
# Tenants: connection, routing, collection


@dataclass
class _Tenant:
    """One configured tenant during a triage: its connection, the addresses sent to it, what it said."""

    config: TenantConfig
    addresses: list[str] = field(default_factory=list)
    provider: TokenProvider | None = None
    client: GraphClient | None = None
    error: str | None = None
    auth_failed: bool = False
    snapshot: TenantSnapshot | None = None
    findings: list[Finding] = field(default_factory=list)
    not_evaluated: list[NotEvaluated] = field(default_factory=list)
    _owners: dict[str, User] | None = None
    _deleted: dict[str, User] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def connect(self, config: Config) -> GraphClient | None:
        """Sign in the way an audit run does (runner.audit_tenant): a token first, then the client."""
        if self.client is not None or self.error is not None:
            return self.client
        try:
            provider, client = connect(self.config, config.audit)
        except AuthError as err:
            log.error("%s: %s", self.name, err)
            self.error, self.auth_failed = f"authentication: {err}", True
            return None
        self.provider, self.client = provider, client
        return self.client

    def verified_domains(self, config: Config) -> frozenset[str]:
        client = self.connect(config)
        if client is None:
            return frozenset()
        try:
            # Read as a collection page: an answer without `value` is retried as a fault, not "no domains".
            pages = client.iter_pages("/organization", params={"$select": "verifiedDomains"})
            org = (next(pages, None) or [{}])[0]
        except GraphError as err:
            log.warning("%s: could not read the verified domains: %s", self.name, err)
            return frozenset()
        return frozenset(str(d.get("name") or "").lower() for d in org.get("verifiedDomains") or ())

    def collect(self, config: Config, now: datetime) -> None:
        client = self.connect(config)
        if client is None or self.provider is None:
            return
        try:
            snapshot = collect_tenant(
                client,
                self.config,
                config,
                probe="all",
                recipients=self.addresses,
                audit_roles=self.provider.roles(),
                now=now,
                addresses=self.addresses,
            )
        except AuthError as err:
            self.error, self.auth_failed = f"authentication: {err}", True
            return
        except GraphError as err:
            log.error("%s: the triage could not read the tenant: %s", self.name, err)
            self.error = str(err)
            return
        ctx = check_context(self.config, config, now)
        self.findings, self.not_evaluated = run_checks(snapshot, ctx)
        self.snapshot = snapshot

    # ---- what the tenant says about an address ---------------------------------------------------

    def owner(self, address: str) -> User | None:
        if self._owners is None:
            self._owners = _owners(self.snapshot.users.value if self.snapshot else None)
        return self._owners.get(address)

    def deleted_owner(self, address: str) -> User | None:
        if self._deleted is None:
            self._deleted = _owners(self.snapshot.deleted_users.value if self.snapshot else None)
        return self._deleted.get(address)

    def user_findings(self, user_id: str) -> dict[str, Finding]:
        return {f.check_id: f for f in self.findings if f.user_id == user_id}

    def tenant_findings(self, check_id: str) -> list[Finding]:
        return [f for f in self.findings if f.check_id == check_id and f.user_id is None]

    def address_finding(self, check_id: str, address: str) -> Finding | None:
        return next(
            (f for f in self.findings if f.check_id == check_id and (f.user_principal_name or "").lower() == address),
            None,
        )

    def probe(self, user: User) -> MailboxProbe | None:
        probes = self.snapshot.probes if self.snapshot else None
        return (probes.value or {}).get(user.id) if probes is not None and probes.ok else None

    def not_checked(self, check_ids: Iterable[str]) -> list[str]:
        wanted = set(check_ids)
        return [f"{n.check_id} ({n.reason})" for n in self.not_evaluated if n.check_id in wanted]

    @property
    def status(self) -> str:
        if self.snapshot is None:
            return "failed"
        return "partial" if self.snapshot.problems else "ok"

    def lookup(self) -> TenantLookup:
        problems = self.error or ("; ".join(self.snapshot.problems) if self.snapshot else None) or None
        return TenantLookup(self.name, self.config.tenant_id, self.status, problems, len(self.addresses))


def _owners(users: Iterable[User] | None) -> dict[str, User]:
    owners: dict[str, User] = {}
    for user in users or ():
        for address in user_addresses(user):
            owners.setdefault(address, user)
    return owners


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def route(
    addresses: Sequence[str], tenants: Sequence[_Tenant], config: Config, forced: bool
) -> dict[str, list[_Tenant]]:
    """Which tenants each address is looked up in (see the module docstring)."""
    if forced or len(tenants) == 1:
        return {a: list(tenants) for a in addresses}
    routes: dict[str, list[_Tenant]] = {}
    pending: list[str] = []
    for address in addresses:
        home = next((t for t in tenants if _domain(address) in t.config.domains), None)
        if home is not None:
            routes[address] = [home]
        else:
            pending.append(address)
    if pending:
        verified = {t.name: t.verified_domains(config) for t in tenants}
        for address in pending:
            home = next((t for t in tenants if _domain(address) in verified[t.name]), None)
            routes[address] = [home] if home is not None else list(tenants)
    return routes


# ---------------------------------------------------------------------------------------------------
# Explaining one row

INFO = {c.id: c for c in catalogue()}


def mailbox_checks() -> tuple[str, ...]:
    """Checks about an account's own mailbox, most specific first: the first that fired for the owner explains
    Resource is Not Found / Mailbox Inactive."""
    return explaining(RESOURCE_NOT_FOUND, Scope.USER)


NO_CAUSE_FIX = (
    "Retry the remediation. If it fails again with the same error, run the full audit of this tenant: the "
    "cause may have been removed since the remediation ran (licence assigned, permission granted, mailbox "
    "restored or moved) or the failure was a passing service fault."
)
MOVED_FIX = (
    "Nothing to fix in the tenant. The mailbox exists and can be reached; the message was most likely moved "
    "to another folder or deleted by its owner before the remediation ran. If it must still be removed, find "
    "it with a content search (Microsoft Purview) or the remediation product's message search."
)
GUEST_FIX = (
    "Nothing to fix in this tenant: a guest account has no mailbox here. The message was delivered to the "
    "guest's mailbox in their own organisation, which this remediation cannot reach."
)
NO_MAILBOX_FIX = (
    "If the account should receive mail, enable it and assign a licence that includes Exchange Online "
    "(Microsoft 365 admin center > Users > Active users > the user > Licenses and apps); otherwise stop mail "
    "from being routed to its address."
)
UNKNOWN_ERROR_FIX = (
    "This text is none of the four errors the remediation product documents. Look it up in the product's "
    "documentation or ask its support; the evidence shows what the tenant says about this mailbox today."
)
NOT_ASSESSED_FIX = "Remove what stopped the lookup (named in the evidence) and run the triage again."
NO_ADDRESS_FIX = "Fill in the mailbox address of this row (an e-mail address), or remove the row."
NOWHERE_FIX = (
    " If the address belongs to a tenant this configuration does not list, add that tenant and its domains "
    "to the configuration and run the triage again."
)


@dataclass(frozen=True)
class _RunFacts:
    """Findings about the app registration, read in its home tenant, that hold for every tenant."""

    home_tenant_id: str | None
    single_tenant: Finding | None
    credentials: list[Finding]

    @classmethod
    def of(cls, tenants: Sequence[_Tenant], config: Config) -> _RunFacts:
        home = (config.remediation_app.home_tenant_id or "").lower()
        # The home tenant's finding reads the app registration itself: prefer it to a service principal's.
        findings = sorted((f for t in tenants for f in t.findings), key=lambda f: f.tenant_id.lower() != home)
        single = next((f for f in findings if f.check_id == "app-single-tenant"), None)
        creds = [
            f
            for f in findings
            if f.check_id == "app-credential-expiring" and f.severity in (Severity.CRITICAL, Severity.HIGH)
        ]
        creds.sort(key=lambda f: -f.severity.rank)
        return cls(config.remediation_app.home_tenant_id, single, creds)


def _from(finding: Finding, evidence: str | None = None) -> Diagnosis:
    info = check_info(finding.check_id)
    return Diagnosis(
        info.title if info else finding.check_id,
        finding.check_id,
        evidence or finding.evidence,
        finding.fix,
        Outcome.FIX,
    )


def _merge(findings: Sequence[Finding]) -> Diagnosis:
    return _from(findings[0], "; ".join(f.evidence for f in findings))


def _user_state(view: _Tenant, user: User) -> str:
    skus = SkuIndex(view.snapshot) if view.snapshot else None
    parts = [f"{user.upn} ({'enabled' if user.enabled else 'disabled'}, {user.user_type.lower()})"]
    if skus is not None:
        parts.append(describe_licences(user, skus))
    parts.append(describe_probe(view.probe(user)))
    return ", ".join(parts)


def _other_findings(view: _Tenant, user: User | None, used: str = "") -> str:
    if user is None:
        return ""
    others = [f"{f.check_id}: {f.evidence}" for f in view.user_findings(user.id).values() if f.check_id != used]
    return f"; other findings for this mailbox: {' | '.join(others)}" if others else ""


def _no_cause(view: _Tenant, kind: str, what: str, user: User | None) -> Diagnosis:
    evidence = f"no cause found in the tenant now; {what}"
    gaps = view.not_checked(explaining(kind))
    if gaps:
        evidence += f"; could not check: {', '.join(gaps)}"
    return Diagnosis(
        "No cause found in the tenant now",
        "",
        evidence + _other_findings(view, user),
        NO_CAUSE_FIX,
        Outcome.UNEXPLAINED,
    )


def _not_assessed(evidence: str) -> Diagnosis:
    return Diagnosis("Could not be assessed", "", evidence, NOT_ASSESSED_FIX, Outcome.NOT_ASSESSED)


def _absent(view: _Tenant, address: str) -> Diagnosis:
    """The address resolves to no user: soft-deleted owner, or nobody at all."""
    deleted = view.deleted_owner(address)
    missing = view.address_finding("recipient-not-in-directory", address)
    if deleted is not None:
        own = view.user_findings(deleted.id).get("soft-deleted-user")
        parts = [f"no active user owns {address}; it belongs only to the soft-deleted user {deleted.upn}"]
        if own is not None:
            parts.append(own.evidence)
        info = INFO["soft-deleted-user"]
        return Diagnosis(info.title, info.id, "; ".join(parts), own.fix if own else info.fix, Outcome.FIX)
    if missing is not None:
        return _from(missing)
    info = INFO["recipient-not-in-directory"]
    return Diagnosis(info.title, info.id, f"no user in {view.name} owns {address}", info.fix, Outcome.FIX)


def _mailbox_state(view: _Tenant, kind: str, address: str) -> Diagnosis:
    """Resource is Not Found / Mailbox Inactive: what is wrong with the mailbox, if anything."""
    user = view.owner(address)
    if user is None:
        return _absent(view, address)
    found = view.user_findings(user.id)
    for check_id in mailbox_checks():
        if check_id in found:
            return _from(found[check_id], found[check_id].evidence + _other_findings(view, user, check_id))
    state = _user_state(view, user)
    if user.is_guest:
        return Diagnosis(
            "Guest account (no mailbox in this tenant)",
            "",
            f"{state}; guests are not probed",
            GUEST_FIX,
            Outcome.NOTHING,
        )
    probes = view.snapshot.probes if view.snapshot else None
    probe = view.probe(user)
    if probes is None or not probes.ok:
        return _not_assessed(
            f"the mailbox of {state} could not be probed: {probes.error if probes else 'no mailbox data'}"
        )
    if probe is not None and probe.outcome in ("access_denied", "failed"):
        return _not_assessed(f"the mailbox of {state} could not be probed ({probe.code or probe.outcome})")
    if probe is None or probe.outcome == "no_mailbox":  # not probed: no address, no plan, disabled
        why = "; the account is disabled, so the licence checks leave it out" if not user.enabled else ""
        return Diagnosis(
            "No Exchange Online mailbox for this account",
            "",
            f"{state}{why}" + _other_findings(view, user),
            NO_MAILBOX_FIX,
            Outcome.FIX,
        )
    if kind == RESOURCE_NOT_FOUND:
        return Diagnosis(
            "Message moved or deleted by its owner",
            "",
            f"the mailbox is healthy today: {state}; no licence or mailbox problem found" + _other_findings(view, user),
            MOVED_FIX,
            Outcome.NOTHING,
        )
    return _no_cause(
        view,
        kind,
        f"the mailbox is active and reachable today: {state}; it may have been "
        "licensed, restored or moved to Exchange Online since the remediation",
        user,
    )


def _app_access(view: _Tenant, kind: str, address: str, facts: _RunFacts) -> Diagnosis:
    """Remediation Failed - Unknown Reason: the app's consent, state, credential, roles, access policy."""
    for check_id in ("app-not-consented", "app-disabled"):
        if found := view.tenant_findings(check_id):
            return _merge(found)
    lapsed = [f for f in facts.credentials if f.severity == Severity.CRITICAL]
    if lapsed:
        return _merge(lapsed)
    if found := view.tenant_findings("app-missing-permission"):
        return _merge(found)
    user = view.owner(address)
    if user is not None and (scope := view.user_findings(user.id).get("mailbox-outside-app-scope")):
        return _from(scope)
    if facts.credentials:
        d = _merge(facts.credentials)
        return Diagnosis(
            d.cause,
            d.check_id,
            d.evidence + " (a credential still valid exists: this "
            "explains the error only if the remediation product uses the expired one)",
            d.fix,
            Outcome.FIX,
        )
    if view.snapshot is not None and not view.snapshot.users.ok:
        what = f"users could not be read ({view.snapshot.users.error})"
    elif user is None:
        what = f"the app is consented, enabled and holds its permissions; {address} resolves to no user here"
    else:
        what = (
            "the app is consented, enabled and holds Mail.ReadWrite and Organization.Read.All, and no "
            f"access policy or RBAC for Applications scope excludes {_user_state(view, user)}"
        )
    return _no_cause(view, kind, what, user)


def _user_lookup(view: _Tenant, kind: str, address: str, facts: _RunFacts) -> Diagnosis:
    """The Requested User is Invalid: single-tenant app, unverified domain, unknown or deleted user."""
    sp = view.snapshot.remediation_sp.value if view.snapshot and view.snapshot.remediation_sp.ok else None
    home = str(facts.home_tenant_id or (sp or {}).get("appOwnerOrganizationId") or "").lower()
    outside_home = bool(home) and view.config.tenant_id.lower() != home
    own = view.tenant_findings("app-single-tenant")
    unconsented = view.tenant_findings("app-not-consented")
    domain = _domain(address)
    if own and (outside_home or not home):
        where = "" if home else " (the app's home tenant is not known: this holds if it is not this one)"
        return _from(own[0], f"{domain} is a domain of tenant {view.name}; {own[0].evidence}{where}")
    if facts.single_tenant is not None and outside_home:
        extra = f"; {unconsented[0].evidence}" if unconsented else ""
        return _from(
            facts.single_tenant,
            f"{domain} is a domain of tenant {view.name}, not the app's home "
            f"tenant {home}; {facts.single_tenant.evidence}{extra}",
        )
    if unconsented and outside_home:
        return _from(
            unconsented[0],
            f"{unconsented[0].evidence}; a single-tenant app cannot be consented outside its home tenant {home}",
        )
    snapshot = view.snapshot
    org = snapshot.organization.value if snapshot and snapshot.organization.ok else None
    if org is not None and domain in view.config.domains:
        verified = {str(d.get("name") or "").lower() for d in org.get("verifiedDomains") or ()}
        if domain not in verified:
            info = INFO["domain-not-verified"]
            return Diagnosis(
                info.title,
                info.id,
                f"{domain} is configured for {view.name} but is not among "
                f"its verified domains ({', '.join(sorted(verified - {''})) or 'none'})",
                info.fix,
                Outcome.FIX,
            )
    user = view.owner(address)
    if user is None:
        return _absent(view, address)
    pending = view.user_findings(user.id).get("mailbox-not-provisioned")
    if pending is not None:
        return _from(pending)
    return _no_cause(
        view,
        kind,
        f"{address} resolves today to {_user_state(view, user)}; the account may "
        "have been created, renamed or restored since the remediation",
        user,
    )


def diagnose(view: _Tenant, kind: str | None, error: str, address: str, facts: _RunFacts) -> Diagnosis:
    if view.snapshot is None:
        return _not_assessed(f"tenant {view.name} could not be read: {view.error or 'unknown reason'}")
    if kind is None:
        user = view.owner(address)
        if not view.snapshot.users.ok:
            where = f"users of {view.name} could not be read: {view.snapshot.users.error}"
        elif user is not None:
            where = f"{address} resolves to {_user_state(view, user)}"
        else:
            where = f"{address} resolves to no user in {view.name}"
        said = f"'{error}'" if error.strip() else "an empty error cell"
        return Diagnosis(
            "Unknown error text",
            "",
            f"{said} is not one of the four documented remediation errors; {where}{_other_findings(view, user)}",
            UNKNOWN_ERROR_FIX,
            Outcome.UNKNOWN_ERROR,
        )
    if found := view.tenant_findings("tenant-no-exchange-online"):
        return _merge(found)  # no mailbox exists in the tenant: whatever the error said, this is why
    if kind == UNKNOWN_REASON:
        return _app_access(view, kind, address, facts)
    if not view.snapshot.users.ok:
        return _not_assessed(f"users of {view.name} could not be read: {view.snapshot.users.error}")
    if kind == USER_INVALID:
        return _user_lookup(view, kind, address, facts)
    return _mailbox_state(view, kind, address)


def _pick(candidates: Sequence[_Tenant], address: str) -> tuple[_Tenant | None, str]:
    """Among the tenants an address was looked up in, the one that knows it; a note when it is ambiguous."""
    if len(candidates) == 1:
        return candidates[0], ""
    owners = [t for t in candidates if t.owner(address) is not None]
    if not owners:
        owners = [t for t in candidates if t.deleted_owner(address) is not None]
    if owners:
        note = f" (also found in {', '.join(t.name for t in owners[1:])})" if len(owners) > 1 else ""
        return owners[0], note
    return None, ""


def _nowhere(candidates: Sequence[_Tenant], address: str) -> Diagnosis:
    failed = [t for t in candidates if t.snapshot is None or not t.snapshot.users.ok]
    if failed:
        searched = ", ".join(t.name for t in candidates if t not in failed) or "any tenant"
        reasons = ", ".join(f"{t.name} ({t.error or (t.snapshot.users.error if t.snapshot else '')})" for t in failed)
        return _not_assessed(f"{address} was not found in {searched}; could not look in {reasons}")
    info = INFO["recipient-not-in-directory"]
    return Diagnosis(
        info.title,
        info.id,
        f"{address} is in none of the configured or verified domains and "
        f"no user owns it in any configured tenant ({', '.join(t.name for t in candidates)})",
        info.fix + NOWHERE_FIX,
        Outcome.FIX,
    )


# ---------------------------------------------------------------------------------------------------
# The run


def triage(
    config: Config,
    errorlog: str | Path,
    *,
    tenant: str | None = None,
    out_dir: Path | None = None,
    formats: Sequence[str] | None = None,
    now: datetime | None = None,
) -> TriageResult:
    """Explain every row of a remediation error log and write the workbook (and JSON). See the docstring."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    error_log = read_error_log(errorlog)
    table = error_log.table
    tenants = [_Tenant(t) for t in select_tenants(config, RunOptions(tenant=tenant))]

    entries: list[tuple[int, dict[str, str], str, str, str | None]] = []
    for number, values in enumerate(table.rows, start=1):
        error = values.get(error_log.error_column, "")
        usable = mailbox_address(values.get(error_log.address_column, ""))
        entries.append((number, values, usable, error, error_kind(error)))
    addresses = list(dict.fromkeys(a for _, _, a, _, _ in entries if a))
    routes = route(addresses, tenants, config, forced=tenant is not None)
    for address, candidates in routes.items():
        for t in candidates:
            t.addresses.append(address)
    needed = [t for t in tenants if t.addresses]
    home = (config.remediation_app.home_tenant_id or "").lower()
    if any(
        kind == USER_INVALID and a and any(t.config.tenant_id.lower() != home for t in routes[a])
        for _, _, a, _, kind in entries
    ):
        # The app registration (its sign-in audience) is read only in its home tenant.
        needed += [t for t in tenants if t.config.tenant_id.lower() == home and t not in needed]
    log.info(
        "triage of %d rows (%d addresses) in %s",
        len(entries),
        len(addresses),
        ", ".join(t.name for t in needed) or "no tenant",
    )
    try:
        workers = max(1, min(config.audit.tenant_concurrency, len(needed)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tenant") as pool:
            list(pool.map(lambda t: t.collect(config, now), needed))
    finally:
        for t in tenants:
            if t.client is not None:
                t.client.close()
    facts = _RunFacts.of(needed, config)

    rows: list[TriagedRow] = []
    for number, values, address, error, kind in entries:
        if not address:
            raw = values.get(error_log.address_column, "")
            why = f"'{raw}' is not an e-mail address" if raw else "the address cell is empty"
            missing = Diagnosis("No mailbox address", "", why, NO_ADDRESS_FIX, Outcome.NO_ADDRESS)
            rows.append(TriagedRow(number, values, "", error, kind, "", missing))
            continue
        candidates = routes[address]
        view, note = _pick(candidates, address)
        if view is None:
            rows.append(TriagedRow(number, values, address, error, kind, "", _nowhere(candidates, address)))
            continue
        d = diagnose(view, kind, error, address, facts)
        if note:
            d = Diagnosis(d.cause, d.check_id, d.evidence + note, d.fix, d.outcome)
        rows.append(TriagedRow(number, values, address, error, kind, view.name, d))

    lookups = [t.lookup() for t in needed]
    code = _exit_code(rows, table.bad_rows, needed)
    result = TriageResult(Path(errorlog), list(table.header), rows, list(table.bad_rows), lookups, [], code)
    target = Path(out_dir or config.audit.out_dir)
    written = write_triage(result, target, formats or config.audit.formats, now)
    return TriageResult(result.log_path, result.header, rows, result.unreadable, lookups, written, code)


def _exit_code(rows: Sequence[TriagedRow], unreadable: Sequence, tenants: Sequence[_Tenant]) -> int:
    if tenants and all(t.auth_failed for t in tenants):
        return ExitCode.USAGE
    outcomes = {r.diagnosis.outcome for r in rows}
    if unreadable or Outcome.NOT_ASSESSED in outcomes or any(t.status != "ok" for t in tenants):
        return ExitCode.PARTIAL
    if Outcome.FIX in outcomes:
        return ExitCode.FINDINGS
    return ExitCode.OK


# ---------------------------------------------------------------------------------------------------
# Output

ADDED = ("Tenant", "Cause", "Check id", "Outcome", "Evidence", "Fix")
ADDED_KINDS = {"Evidence": ("wrap", 60), "Fix": ("wrap", 60), "Cause": ("wrap", 34)}


def added_headers(header: Sequence[str]) -> list[str]:
    """The triage's columns, renamed 'Triage <name>' where the log already has a column of that name."""
    taken = {h.strip().lower() for h in header}
    return [f"Triage {name}" if name.lower() in taken else name for name in ADDED]


def rows_table(result: TriageResult) -> SheetTable:
    columns = [Column(text_cell(h) or "(unnamed)") for h in result.header]
    for name, base in zip(added_headers(result.header), ADDED, strict=True):
        kind, width = ADDED_KINDS.get(base, ("text", 0))
        columns.append(Column(name, kind, width))

    def rows():
        for r in result.rows:
            d = r.diagnosis
            yield [
                *(r.values.get(h, "") for h in result.header),
                r.tenant or None,
                d.cause,
                d.check_id or None,
                str(d.outcome),
                d.evidence,
                d.fix,
            ]

    return SheetTable("Rows", columns, rows())


def cause_counts(rows: Iterable[TriagedRow]) -> list[tuple[str, str, str, int]]:
    """(cause, check id, outcome, rows), most frequent first."""
    counts = Counter((r.diagnosis.cause, r.diagnosis.check_id, str(r.diagnosis.outcome)) for r in rows)
    return [
        (cause, check, outcome, n)
        for (cause, check, outcome), n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


def triage_json(result: TriageResult, written: datetime) -> dict:
    return {
        "kind": "etd-audit-triage",
        "triage_schema": 1,
        "version": __version__,
        "written": iso(written),
        "error_log": str(result.log_path),
        "header": result.header,
        "exit_code": result.exit_code,
        "rows": [
            {
                "row": r.row,
                "values": r.values,
                "address": r.address,
                "error": r.error,
                "error_kind": r.error_kind,
                "tenant": r.tenant or None,
                "cause": r.diagnosis.cause,
                "check_id": r.diagnosis.check_id or None,
                "outcome": str(r.diagnosis.outcome),
                "evidence": r.diagnosis.evidence,
                "fix": r.diagnosis.fix,
            }
            for r in result.rows
        ],
        "causes": [
            {"cause": c, "check_id": k or None, "outcome": o, "rows": n} for c, k, o, n in cause_counts(result.rows)
        ],
        "unreadable": [{"line": line, "reason": why} for line, why in result.unreadable],
        "tenants": [
            {
                "name": t.name,
                "tenant_id": t.tenant_id,
                "status": t.status,
                "error": t.error,
                "addresses_looked_up": t.looked_up,
            }
            for t in result.tenants
        ],
    }


SUMMARY_WIDTHS = {"A": 44, "B": 28, "C": 18, "D": 10, "E": 70}


def _summary(wb, result: TriageResult, written: datetime) -> None:
    ws = wb.create_sheet("Summary")
    for col, width in SUMMARY_WIDTHS.items():
        ws.column_dimensions[col].width = width
    sh = SheetWriter(ws)

    def cell(value, style: str | None = None):
        value = text_cell(value) if isinstance(value, str) else value
        if style is None or value is None:
            return value
        c = WriteOnlyCell(ws, value=value)
        c.style = style
        return c

    outcomes = Counter(str(r.diagnosis.outcome) for r in result.rows)
    sh.add({"A": cell("Remediation error log triage", "etd_title")}, height=24)
    sh.blank()
    facts = [
        ("Error log", cell(result.log_path.name, "etd_value")),
        ("Rows triaged", cell(len(result.rows), "etd_value")),
        ("Lines not readable", cell(len(result.unreadable), "etd_value")),
        *((f"Rows: {o.value}", cell(outcomes.get(o.value, 0), "etd_value")) for o in Outcome),
        ("Tenants looked up", cell(len(result.tenants), "etd_value")),
        ("Exit code", cell(result.exit_code, "etd_value")),
        ("Tool version", cell(__version__, "etd_value")),
        ("Written (UTC)", cell(excel_time(written), "etd_time")),
    ]
    for label, value in facts:
        sh.add({"A": cell(label, "etd_label"), "B": value})

    section(sh, cell, "Causes")
    sh.add(
        {
            "A": cell("Cause", "etd_header"),
            "B": cell("Check", "etd_header"),
            "C": cell("Outcome", "etd_header"),
            "D": cell("Rows", "etd_header"),
        }
    )
    for cause, check, outcome, n in cause_counts(result.rows):
        sh.add(
            {
                "A": cell(cause, "etd_wrap"),
                "B": cell(check or "-", "etd_value"),
                "C": cell(outcome, "etd_value"),
                "D": cell(n),
            }
        )

    section(sh, cell, "Tenants")
    sh.add(
        {
            "A": cell("Tenant", "etd_header"),
            "B": cell("Tenant id", "etd_header"),
            "C": cell("Status", "etd_header"),
            "D": cell("Looked up", "etd_header"),
            "E": cell("Problem", "etd_header"),
        }
    )
    if not result.tenants:
        sh.add({"A": cell("No tenant was needed: no row names a mailbox.", "etd_value")})
    for t in result.tenants:
        sh.add(
            {
                "A": cell(t.name, "etd_value"),
                "B": cell(t.tenant_id, "etd_value"),
                "C": cell(t.status, f"etd_status_{t.status}"),
                "D": cell(t.looked_up),
                "E": cell(t.error, "etd_wrap"),
            },
            height=15 * text_lines(t.error, 70) if t.error else None,
        )

    section(sh, cell, "Lines not readable")
    if not result.unreadable:
        sh.add({"A": cell("None: every line of the file was read.", "etd_value")})
    else:
        sh.add({"A": cell("Line", "etd_header"), "B": cell("Why", "etd_header")})
        for line, why in result.unreadable:
            sh.add({"A": cell(line), "B": cell(why, "etd_wrap")})


def write_triage(result: TriageResult, out_dir: Path, formats: Iterable[str], now: datetime) -> list[Path]:
    """The workbook (Summary + Rows), JSON and CSV of a triage, each written whole or not at all."""
    formats = tuple(dict.fromkeys(f.strip().lower() for f in formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(
            f"unknown output format {unknown[0] if unknown else '(none)'}; choose from {', '.join(FORMATS)}"
        )
    fs.ensure_dir(out_dir)
    fs.remove_stale_temps(out_dir, STEM_PREFIX)
    base = stem = f"{STEM_PREFIX}{now:%Y%m%dT%H%M%SZ}"
    n = 2
    while any((out_dir / f"{stem}.{f}").exists() for f in FORMATS):
        stem, n = f"{base}-{n}", n + 1

    def xlsx(fh) -> None:
        wb = new_workbook()
        _summary(wb, result, now)
        write_table(wb, rows_table(result))
        wb.save(fh)

    writers = {
        "xlsx": xlsx,
        "csv": lambda fh: write_csv(fh, rows_table(result)),
        "json": lambda fh: fh.write(dump(triage_json(result, now))),
    }
    staged: list[tuple[Path, Path]] = []
    try:
        for fmt in FORMATS:
            if fmt in formats:
                target = out_dir / f"{stem}.{fmt}"
                staged.append((fs.stage(target, writers[fmt]), target))
        fs.commit(staged)
    except BaseException:
        fs.discard(staged)
        raise
    return [target for _, target in staged]


def read_triage_json(path: str | Path) -> dict:
    """A triage JSON written by `write_triage` (for tools and tests)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("kind") != "etd-audit-triage":
        raise ValueError(f"{path}: not a triage report")
    return data
