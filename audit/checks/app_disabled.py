"""The remediation app's enterprise application is disabled for sign-in."""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._base import CheckContext, tenant_finding
from audit.models import UNKNOWN_REASON, CheckInfo, Finding, Severity, TenantSnapshot

CHECK = CheckInfo(
    id="app-disabled",
    title="Remediation app disabled in this tenant",
    severity=Severity.CRITICAL,  # no token, so every remediation in the tenant fails
    predicts=UNKNOWN_REASON,
    cause=(
        "The remediation app's enterprise application is disabled for sign-in (accountEnabled false), so "
        "Entra ID issues it no tokens in this tenant."
    ),
    fix=(
        "Entra admin center > Enterprise applications > the app > Properties: set 'Enabled for users to "
        "sign in?' to Yes and save; or Update-MgServicePrincipal -ServicePrincipalId <id> "
        "-AccountEnabled:$true (PATCH /servicePrincipals/{id} with accountEnabled true)."
    ),
    needs=("remediation_sp",),
)


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    sp = snapshot.remediation_sp.value
    if sp is not None and sp.get("accountEnabled") is False:
        yield tenant_finding(
            CHECK,
            snapshot,
            (
                f"service principal {sp.get('displayName') or ''} ({sp.get('id')}, appId {sp.get('appId')}) "
                "has accountEnabled false"
            ),
        )
