"""The remediation app cannot sign in: disabled in this tenant, or disabled by Microsoft."""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._base import CheckContext, tenant_finding
from audit.models import UNKNOWN_REASON, CheckInfo, Finding, Scope, Severity, TenantSnapshot

CHECK = CheckInfo(
    id="app-disabled",
    title="Remediation app disabled in this tenant",
    severity=Severity.CRITICAL,  # no token, so every remediation in the tenant fails
    predicts=UNKNOWN_REASON,
    cause=(
        "The remediation app cannot sign in, so Entra ID issues it no tokens in this tenant: its enterprise "
        "application is disabled for sign-in (accountEnabled false), or Microsoft disabled the app "
        "(disabledByMicrosoftStatus set, for example DisabledDueToViolationOfServicesAgreement, or isDisabled "
        "true on the app or its service principal)."
    ),
    fix=(
        "Disabled in the tenant: Entra admin center > Enterprise applications > the app > Properties: set "
        "'Enabled for users to sign in?' to Yes and save; or Update-MgServicePrincipal -ServicePrincipalId "
        "<id> -AccountEnabled:$true (PATCH /servicePrincipals/{id} with accountEnabled true). Disabled by "
        "Microsoft: no tenant setting undoes it; the product's vendor must resolve it with Microsoft (or "
        "register a new app), then consent to the app again in each tenant."
    ),
    needs=("remediation_sp",),
    scope=Scope.APP,
    explains=(UNKNOWN_REASON,),
    needs_consent=True,
    readiness="remediation app enabled",
    precedence=3,
)


def _by_microsoft(obj: dict) -> list[str]:
    """Why Microsoft's own flags keep this object from signing in (empty: they do not)."""
    reasons = []
    status = obj.get("disabledByMicrosoftStatus")
    if status and str(status).lower() != "notdisabled":
        reasons.append(f"has disabledByMicrosoftStatus {status}")
    if obj.get("isDisabled") is True:
        reasons.append("has isDisabled true")
    return reasons


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    # disabledByMicrosoftStatus: null (not disabled), NotDisabled, or DisabledDueToViolationOfServicesAgreement
    # (Graph v1.0 application resource; isDisabled from the v1.0 metadata of both types).
    evidence = []
    sp = snapshot.remediation_sp.value
    if sp is not None:
        reasons = (["has accountEnabled false"] if sp.get("accountEnabled") is False else []) + _by_microsoft(sp)
        if reasons:
            name = f"service principal {sp.get('displayName') or ''} ({sp.get('id')}, appId {sp.get('appId')})"
            evidence.append(f"{name} " + " and ".join(reasons))
    app = snapshot.application.value if snapshot.application.ok else None
    if app is not None and (reasons := _by_microsoft(app)):
        name = f"app registration {app.get('displayName') or ''} ({app.get('id')}, appId {app.get('appId')})"
        evidence.append(f"{name} " + " and ".join(reasons))
    if evidence:
        yield tenant_finding(CHECK, snapshot, "; ".join(evidence))
