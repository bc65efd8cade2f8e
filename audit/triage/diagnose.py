"""Explaining one row: from what its tenant says about the mailbox, the most likely cause and its fix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from audit.checks import (
    app_credential_expiring,
    app_disabled,
    app_missing_permission,
    app_not_consented,
    app_single_tenant,
    check_info,
    domain_not_verified,
    explaining,
    mailbox_not_provisioned,
    mailbox_outside_app_scope,
    recipient_not_in_directory,
    soft_deleted_user,
    tenant_no_exchange_online,
)
from audit.checks._facts import describe_probe
from audit.config import Config
from audit.licensing import SkuIndex, describe_licences
from audit.models import (
    RESOURCE_NOT_FOUND,
    UNKNOWN_REASON,
    USER_INVALID,
    Finding,
    Scope,
    Severity,
    User,
)
from audit.triage.result import Diagnosis, Outcome
from audit.triage.tenants import TenantView, domain_of


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
class RunFacts:
    """Findings about the app registration, read in its home tenant, that hold for every tenant."""

    home_tenant_id: str | None
    single_tenant: Finding | None
    credentials: list[Finding]

    @classmethod
    def of(cls, tenants: Sequence[TenantView], config: Config) -> RunFacts:
        home = (config.remediation_app.home_tenant_id or "").lower()
        # The home tenant's finding reads the app registration itself: prefer it to a service principal's.
        findings = sorted((f for t in tenants for f in t.findings), key=lambda f: f.tenant_id.lower() != home)
        single = next((f for f in findings if f.check_id == app_single_tenant.CHECK.id), None)
        creds = [
            f
            for f in findings
            if f.check_id == app_credential_expiring.CHECK.id and f.severity in (Severity.CRITICAL, Severity.HIGH)
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


def _user_state(view: TenantView, user: User) -> str:
    skus = SkuIndex.from_skus(view.snapshot.subscribed_skus) if view.snapshot else None
    parts = [f"{user.upn} ({'enabled' if user.enabled else 'disabled'}, {user.user_type.lower()})"]
    if skus is not None:
        parts.append(describe_licences(user, skus))
    parts.append(describe_probe(view.probe(user)))
    return ", ".join(parts)


def _other_findings(view: TenantView, user: User | None, used: str = "") -> str:
    if user is None:
        return ""
    others = [f"{f.check_id}: {f.evidence}" for f in view.user_findings(user.id).values() if f.check_id != used]
    return f"; other findings for this mailbox: {' | '.join(others)}" if others else ""


def _no_cause(view: TenantView, kind: str, what: str, user: User | None) -> Diagnosis:
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


def _absent(view: TenantView, address: str) -> Diagnosis:
    """The address resolves to no user: soft-deleted owner, or nobody at all."""
    deleted = view.deleted_owner(address)
    missing = view.address_finding(recipient_not_in_directory.CHECK.id, address)
    if deleted is not None:
        own = view.user_findings(deleted.id).get(soft_deleted_user.CHECK.id)
        parts = [f"no active user owns {address}; it belongs only to the soft-deleted user {deleted.upn}"]
        if own is not None:
            parts.append(own.evidence)
        info = soft_deleted_user.CHECK
        return Diagnosis(info.title, info.id, "; ".join(parts), own.fix if own else info.fix, Outcome.FIX)
    if missing is not None:
        return _from(missing)
    info = recipient_not_in_directory.CHECK
    return Diagnosis(info.title, info.id, f"no user in {view.name} owns {address}", info.fix, Outcome.FIX)


def _mailbox_state(view: TenantView, kind: str, address: str) -> Diagnosis:
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


def _app_access(view: TenantView, kind: str, address: str, facts: RunFacts) -> Diagnosis:
    """Remediation Failed - Unknown Reason: the app's consent, state, credential, roles, access policy."""
    for check_id in (app_not_consented.CHECK.id, app_disabled.CHECK.id):
        if found := view.tenant_findings(check_id):
            return _merge(found)
    lapsed = [f for f in facts.credentials if f.severity == Severity.CRITICAL]
    if lapsed:
        return _merge(lapsed)
    if found := view.tenant_findings(app_missing_permission.CHECK.id):
        return _merge(found)
    user = view.owner(address)
    if user is not None and (scope := view.user_findings(user.id).get(mailbox_outside_app_scope.CHECK.id)):
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


def _user_lookup(view: TenantView, kind: str, address: str, facts: RunFacts) -> Diagnosis:
    """The Requested User is Invalid: single-tenant app, unverified domain, unknown or deleted user."""
    sp = view.snapshot.remediation_sp.value if view.snapshot and view.snapshot.remediation_sp.ok else None
    home = str(facts.home_tenant_id or (sp or {}).get("appOwnerOrganizationId") or "").lower()
    outside_home = bool(home) and view.config.tenant_id.lower() != home
    own = view.tenant_findings(app_single_tenant.CHECK.id)
    unconsented = view.tenant_findings(app_not_consented.CHECK.id)
    domain = domain_of(address)
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
            info = domain_not_verified.CHECK
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
    pending = view.user_findings(user.id).get(mailbox_not_provisioned.CHECK.id)
    if pending is not None:
        return _from(pending)
    return _no_cause(
        view,
        kind,
        f"{address} resolves today to {_user_state(view, user)}; the account may "
        "have been created, renamed or restored since the remediation",
        user,
    )


def diagnose(view: TenantView, kind: str | None, error: str, address: str, facts: RunFacts) -> Diagnosis:
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
    if found := view.tenant_findings(tenant_no_exchange_online.CHECK.id):
        return _merge(found)  # no mailbox exists in the tenant: whatever the error said, this is why
    if kind == UNKNOWN_REASON:
        return _app_access(view, kind, address, facts)
    if not view.snapshot.users.ok:
        return _not_assessed(f"users of {view.name} could not be read: {view.snapshot.users.error}")
    if kind == USER_INVALID:
        return _user_lookup(view, kind, address, facts)
    return _mailbox_state(view, kind, address)


def pick(candidates: Sequence[TenantView], address: str) -> tuple[TenantView | None, str]:
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


def nowhere(candidates: Sequence[TenantView], address: str) -> Diagnosis:
    failed = [t for t in candidates if t.snapshot is None or not t.snapshot.users.ok]
    if failed:
        searched = ", ".join(t.name for t in candidates if t not in failed) or "any tenant"
        reasons = ", ".join(f"{t.name} ({t.error or (t.snapshot.users.error if t.snapshot else '')})" for t in failed)
        return _not_assessed(f"{address} was not found in {searched}; could not look in {reasons}")
    info = recipient_not_in_directory.CHECK
    return Diagnosis(
        info.title,
        info.id,
        f"{address} is in none of the configured or verified domains and "
        f"no user owns it in any configured tenant ({', '.join(t.name for t in candidates)})",
        info.fix + NOWHERE_FIX,
        Outcome.FIX,
    )


def no_address(raw: str) -> Diagnosis:
    """A row whose address cell holds no usable e-mail address."""
    why = f"'{raw}' is not an e-mail address" if raw else "the address cell is empty"
    return Diagnosis("No mailbox address", "", why, NO_ADDRESS_FIX, Outcome.NO_ADDRESS)
