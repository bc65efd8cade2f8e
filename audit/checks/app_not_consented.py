"""The remediation app has no service principal (enterprise application) in the tenant."""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._base import CheckContext, tenant_finding
from audit.models import UNKNOWN_REASON, USER_INVALID, CheckInfo, Finding, Scope, Severity, TenantSnapshot

CHECK = CheckInfo(
    id="app-not-consented",
    title="Remediation app not consented in this tenant",
    severity=Severity.CRITICAL,  # every remediation in the tenant fails
    predicts=UNKNOWN_REASON,
    cause=(
        "The remediation app has no enterprise application (service principal) in this tenant: admin "
        "consent was never granted here, or the enterprise application was deleted. Without it the app "
        "gets no token and no permissions for this tenant."
    ),
    fix=(
        "Run the remediation product's Microsoft 365 onboarding (or re-authorisation) step for this tenant "
        "and accept the consent prompt as a Global Administrator or Privileged Role Administrator. The app "
        "then appears under Entra admin center > Enterprise applications with its Microsoft Graph "
        "permissions on the Permissions page."
    ),
    needs=("remediation_sp",),
    scope=Scope.APP,
    explains=(UNKNOWN_REASON, USER_INVALID),
    shows_no_consent=True,
    readiness="remediation app consented in this tenant",
    precedence=2,
)


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    if snapshot.remediation_sp.value is None:
        yield tenant_finding(
            CHECK,
            snapshot,
            (
                f"no service principal with appId {ctx.remediation_app.app_id} in tenant "
                f"{snapshot.tenant_name} ({snapshot.tenant_id})"
            ),
        )
