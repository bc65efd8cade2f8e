"""Value objects shared by collection, checks, reports and the CLI.

Everything here is plain data: frozen dataclasses and small named tuples. Checks read a
TenantSnapshot and yield Findings; reports read Findings and TenantResults. Nothing in here talks
to Graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Higher is worse: critical 4 ... low 1. The one definition of the severity order."""
        return {"critical": 4, "high": 3, "medium": 2, "low": 1}[self.value]

    @classmethod
    def worst_first(cls) -> list[Severity]:
        return sorted(cls, key=lambda s: -s.rank)


class Failure(StrEnum):
    """Why a tenant could not be audited at all (TenantResult.failure)."""

    AUTHENTICATION = "authentication"  # no token: the config's credentials or consent are wrong
    GRAPH = "graph"  # signed in, but Graph could not be read


class TenantStatus(StrEnum):
    OK = "ok"
    PARTIAL = "partial"  # collected, but some data could not be read (see not_evaluated / error)
    FAILED = "failed"  # nothing usable: auth failed, Graph unreachable, ...


# The four errors the remediation product shows, worded exactly as its documentation words them.
RESOURCE_NOT_FOUND = "Resource is Not Found"
UNKNOWN_REASON = "Remediation Failed - Unknown Reason"
USER_INVALID = "The Requested User is Invalid"
MAILBOX_INACTIVE = "The Mailbox is either Inactive, Soft-Deleted, or is Hosted On-Premise"


class Scope(StrEnum):
    """What a check's findings are about."""

    USER = "user"  # one account or address; readiness counts them as mailboxes that would fail
    TENANT = "tenant"  # a setting of the tenant itself
    APP = "app"  # the remediation app's registration or enterprise application


@dataclass(frozen=True)
class CheckInfo:
    """A check's declarative metadata: everything readiness, triage and the reports need to know about it.

    `needs` names the snapshot datasets it cannot do without. `explains` lists the remediation errors
    triage looks to this check for (a check that could not run is named when triage finds no cause).
    `needs_consent`: it reads the remediation app's enterprise application, so it has nothing to judge where
    the app is not consented; `shows_no_consent`: a finding of it says the app is not consented. `readiness`
    is the label of its line in the readiness list (tenant and app checks; the title when empty).
    `counted_among` names the snapshot dataset a user check's findings are a share of (empty: the users
    read). `precedence` orders checks where they are weighed against each other: when one account has
    findings of several checks that explain the same error, triage names the lowest; readiness lists tenant
    and app checks lowest first (prerequisites such as Exchange Online and consent before the rest).
    `reads` names datasets it uses when they are there (any one is enough), so the Checks sheet names
    them too. `legacy_subject`: a pattern whose first group is the subject in the evidence of reports written before
    findings stored their subject.
    """

    id: str
    title: str
    severity: Severity
    predicts: str
    cause: str
    fix: str
    needs: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    scope: Scope = Scope.USER
    explains: tuple[str, ...] = ()
    needs_consent: bool = False
    shows_no_consent: bool = False
    readiness: str = ""
    counted_among: str = ""
    precedence: int = 100
    legacy_subject: str = ""


@dataclass(frozen=True)
class Finding:
    """One account or tenant setting on which remediation would fail. Field order = report column order."""

    tenant_id: str
    check_id: str
    severity: Severity
    user_principal_name: str | None
    user_id: str | None
    display_name: str | None
    predicted_error: str
    cause: str
    fix: str
    evidence: str
    first_seen: str | None = None  # ISO-8601; set by the report from the previous run
    subject: str | None = None  # for tenant-level findings: the role, domain or credential concerned

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity across runs: the same check on the same object in the same tenant."""
        return (self.tenant_id, self.check_id, self.user_id or self.user_principal_name or self.subject or "")


# What the audit's own app must hold to read each snapshot dataset (least privileged first). Collection
# names it when Graph refuses a read; the report names it in the Checks sheet's Needs column.
PERMISSION = {
    "users": "User.Read.All",
    "deleted_users": "User.Read.All",
    "organization": "Organization.Read.All",
    "subscribed_skus": "Organization.Read.All",
    "remediation_sp": "Application.Read.All",
    "remediation_roles": "Application.Read.All",
    "graph_sp_id": "Application.Read.All",
    "application": "Application.Read.All",
    "probes": "MailboxSettings.Read",
    "app_scope": "GroupMember.Read.All",
    "administrative_units": "AdministrativeUnit.Read.All",
    "usage_report": "Reports.Read.All",
    "exchange_online": "MailboxSettings.Read",  # known from the mailbox probes
}
# Datasets that come from the admin rather than from Graph, and where to give them.
ADMIN_INPUT = {
    "recipients": "a recipients file (--recipients FILE)",
    "app_scope": "an access policy export (remediation_app.access_policy_file)",
    "rbac": "or RBAC for Applications exports (remediation_app.role_assignments_file, management_scopes_file)",
}


def needs_text(needs: tuple[str, ...]) -> str:
    """What an admin must provide for a check: permissions first, then files, each once."""
    perms = dict.fromkeys(PERMISSION[n] for n in needs if n in PERMISSION)
    inputs = dict.fromkeys(ADMIN_INPUT[n] for n in needs if n in ADMIN_INPUT)
    unknown = [n for n in needs if n not in PERMISSION and n not in ADMIN_INPUT]
    return "; ".join([*perms, *inputs, *unknown])


# Why the remediation app's registration is not read in a tenant audited in the same run as its home tenant.
READ_IN_HOME_AUDIT = "is read in that tenant's audit"

FINDING_FIELDS = [f.name for f in fields(Finding)]  # the JSON report's fields


def subject_of(pattern: str, evidence: str) -> str | None:
    """The subject named in the evidence of a finding read from a report that did not store it."""
    match = re.search(pattern, evidence) if pattern else None
    return match.group(1).lower() if match else None


@dataclass(frozen=True)
class NotEvaluated:
    check_id: str
    reason: str
    read_in: str | None = None  # tenant id of the audit that evaluates this check instead (the app's home)


# Reports written before NotEvaluated.read_in was stored said it only in the reason.
_LEGACY_READ_IN = re.compile(r"home tenant (\S+), which " + re.escape(READ_IN_HOME_AUDIT) + "$")


def legacy_read_in(reason: str) -> str | None:
    match = _LEGACY_READ_IN.search(reason)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Dataset(Generic[T]):
    """Something read from Graph, or the reason it could not be read (with the permission to grant).

    Missing data is never a pass: a check that needs a dataset whose `error` is set is reported as
    not evaluated with that reason.
    """

    value: T | None
    error: str | None = None
    read_in: str | None = None  # tenant id whose audit reads this instead (see NotEvaluated.read_in)

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def missing(cls, reason: str, read_in: str | None = None) -> Dataset[T]:
        return cls(None, reason, read_in)


class AssignedPlan(NamedTuple):
    plan_id: str  # servicePlanId, lower-case GUID
    service: str  # e.g. "exchange"
    status: str  # capabilityStatus: Enabled | Warning | Suspended | LockedOut | Deleted


class ProvisionedPlan(NamedTuple):
    service: str
    capability_status: str
    provisioning_status: str  # Success | PendingInput | PendingActivation | PendingProvisioning | Error ...


class License(NamedTuple):
    sku_id: str
    disabled_plans: tuple[str, ...]


class LicenseState(NamedTuple):
    sku_id: str
    state: str  # Active | ActiveWithError | Disabled | Error
    error: str | None  # CountViolation | MutuallyExclusiveViolation | ... | None
    assigned_by_group: str | None  # group id, None when assigned directly


@dataclass(frozen=True, slots=True)
class User:
    """A compact record of one directory user: only what the checks and reports use."""

    id: str
    upn: str
    display_name: str | None
    mail: str | None
    proxy_addresses: tuple[str, ...]
    user_type: str  # Member | Guest
    enabled: bool
    created: str | None  # ISO-8601 from createdDateTime
    sync_enabled: bool  # onPremisesSyncEnabled is true
    immutable_id: str | None
    licenses: tuple[License, ...]
    plans: tuple[AssignedPlan, ...]
    provisioned: tuple[ProvisionedPlan, ...]
    license_states: tuple[LicenseState, ...]
    deleted: str | None = None  # deletedDateTime, for users in the deleted-items container
    # The non-empty Graph properties an Exchange recipient filter may test (department, companyName, city,
    # country, officeLocation, state, jobTitle, extensionAttribute1-15), as (name, value) pairs.
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def is_guest(self) -> bool:
        return self.user_type.lower() == "guest"


def normalize_address(address: str | None) -> str:
    """Lower-case, trimmed, without an `smtp:`/`SMTP:` prefix. Other prefixes (sip:, x500:) are kept."""
    text = (address or "").strip()
    if text[:5].lower() == "smtp:":
        text = text[5:].strip()
    return text.lower()


def smtp_proxy_addresses(user: User) -> list[str]:
    out = []
    for entry in user.proxy_addresses:
        prefix, sep, _ = entry.partition(":")
        if not sep or prefix.strip().lower() == "smtp":
            if address := normalize_address(entry):
                out.append(address)
    return out


def is_mail_enabled(user: User) -> bool:
    return bool(user.mail) or bool(smtp_proxy_addresses(user))


@dataclass(frozen=True, slots=True)
class MailboxProbe:
    """What Graph said when asked for this user's mailbox (GET /users/{id}/mailboxSettings).

    outcome: "mailbox" (it exists; purpose says user/shared/room/equipment/...),
    "no_mailbox" (MailboxNotEnabledForRESTAPI / ResourceNotFound / ErrorInvalidUser on the mail side),
    "access_denied" (the *audit's* app may not read it: a probe problem, never a finding),
    "failed" (throttled past the retry budget or another error; the user is not assessed).
    source: "probe" or "usage_report" (settled from the mailbox usage report without probing).
    """

    outcome: str
    purpose: str | None = None
    code: str | None = None
    source: str = "probe"


@dataclass(frozen=True)
class AppScope:
    """Exchange application access policies for the remediation app, resolved to user ids."""

    restrict: dict[str, frozenset[str]]  # scope (its ScopeName) -> member user ids; RestrictAccess
    deny: dict[str, frozenset[str]]  # scope -> member user ids; DenyAccess


@dataclass(frozen=True)
class TenantSnapshot:
    """All that was read from one tenant, once. Checks never call Graph; they read this."""

    tenant_name: str
    tenant_id: str
    collected_at: datetime
    users: Dataset[list[User]]
    deleted_users: Dataset[list[User]]
    organization: Dataset[dict]  # GET /organization item: id, displayName, verifiedDomains ...
    subscribed_skus: Dataset[list[dict]]
    remediation_sp: Dataset[dict | None]  # None: no service principal in this tenant
    remediation_roles: Dataset[list[dict]]  # its appRoleAssignments
    remediation_delegated: Dataset[list[dict]]  # its oauth2PermissionGrants (evidence only)
    graph_sp_id: Dataset[str]  # object id of Microsoft Graph's service principal in this tenant
    application: Dataset[dict | None]  # the app object, only readable in the app's home tenant
    probes: Dataset[dict[str, MailboxProbe]]  # by user id
    app_scope: Dataset[AppScope | None]
    recipients: Dataset[list[str]]
    directory_user_count: int | None = None  # what $count says the directory holds
    audit_roles: tuple[str, ...] = ()  # application roles in the audit's own token
    problems: tuple[str, ...] = ()  # faults met while collecting (not permissions): the tenant is partial
    # Whether Exchange Online has an organisation for the tenant: False when Outlook answered
    # OrganizationFromTenantGuidNotFound, True when it answered a probe or the usage report listed a mailbox.
    exchange_online: Dataset[bool] = Dataset.missing("whether Exchange Online serves this tenant was not recorded")
    # Exchange RBAC for Applications grants of the remediation app (audit.rbac.RbacGrant); value None: no
    # RBAC export was named in the config, so none is known.
    rbac: Dataset[tuple] = Dataset(None)

    def dataset(self, name: str) -> Dataset:
        return getattr(self, name)


@dataclass
class TenantResult:
    name: str
    tenant_id: str
    status: TenantStatus
    error: str | None = None
    users_scanned: int = 0
    users_in_directory: int | None = None
    mailboxes_probed: int = 0
    not_assessed: dict[str, int] = field(default_factory=dict)  # reason -> number of users
    not_evaluated: list[NotEvaluated] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    snapshot: TenantSnapshot | None = None
    not_assessed_users: tuple[str, ...] = ()  # ids of users whose mailbox probe failed or was refused
    failure: Failure | None = None  # set when status is failed


@dataclass
class RunResult:
    started: datetime
    finished: datetime
    version: str
    probes: bool
    tenants: list[TenantResult]

    @property
    def findings(self) -> list[Finding]:
        return [f for t in self.tenants for f in t.findings]
