"""A single-tenant app registration used for several tenants, or outside its home tenant."""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._base import CheckContext, CheckUnavailable, tenant_finding
from audit.models import USER_INVALID, CheckInfo, Finding, Scope, Severity, TenantSnapshot

SINGLE_TENANT = "azureadmyorg"

CHECK = CheckInfo(
    id="app-single-tenant",
    title="Remediation app registered for a single tenant",
    severity=Severity.CRITICAL,  # the other tenants get no token at all
    predicts=USER_INVALID,
    cause=(
        "The app registration accepts sign-ins from its home tenant only (sign-in audience AzureADMyOrg), "
        "but the remediation product is integrated with several tenants or with a tenant other than the "
        "app's home. The other tenants cannot issue it tokens, and their users look invalid to it."
    ),
    fix=(
        "In the app's home tenant: Entra admin center > App registrations > the app > Authentication > "
        "Supported account types > 'Accounts in any organizational directory (Multitenant)', or "
        "Update-MgApplication -ApplicationId <object id> -SignInAudience AzureADMultipleOrgs; then grant "
        "admin consent in each other tenant. Alternatively register a separate app in each tenant."
    ),
    needs=(),  # reads the app registration where it can, else the service principal (see run)
    scope=Scope.APP,
    explains=(USER_INVALID,),
    needs_consent=True,
    readiness="remediation app accepts this many tenants",
    precedence=5,
)


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    app = snapshot.application.value if snapshot.application.ok else None
    sp = snapshot.remediation_sp.value if snapshot.remediation_sp.ok else None
    if app:
        audience, source = app.get("signInAudience"), "app registration"
    elif sp:
        audience, source = sp.get("signInAudience"), "service principal"
    else:
        raise CheckUnavailable(
            snapshot.remediation_sp.error
            or (
                "the remediation app has no service principal here and its registration is not readable "
                "in this tenant (see app-not-consented)"
            )
        )
    if not audience:
        raise CheckUnavailable(f"the remediation app's {source} does not state its sign-in audience")
    if str(audience).lower() != SINGLE_TENANT:
        return
    home = ctx.remediation_app.home_tenant_id or (sp or {}).get("appOwnerOrganizationId")
    reasons = []
    if ctx.tenant_count > 1:
        reasons.append(f"{ctx.tenant_count} tenants are configured")
    if home and str(home).lower() != snapshot.tenant_id.lower():
        reasons.append(f"this tenant is not the app's home tenant {home}")
    if reasons:
        yield tenant_finding(
            CHECK, snapshot, f"signInAudience {audience} (from the {source}) while " + " and ".join(reasons)
        )
