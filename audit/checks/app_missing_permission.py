"""Microsoft Graph application permissions the remediation app must hold, checked on its service principal."""

from __future__ import annotations

from collections.abc import Iterator

from audit import rbac
from audit.checks._base import CheckContext, CheckUnavailable, tenant_finding
from audit.models import UNKNOWN_REASON, CheckInfo, Finding, Scope, Severity, TenantSnapshot

# Microsoft Graph application permission (appRole) ids.
REQUIRED_ROLES = {
    "Mail.ReadWrite": "e2a3a72e-5f79-4c64-b1b1-878b674786c9",
    "Organization.Read.All": "498476ce-e0fe-48b0-b801-37ba7e2685c6",
}
# Names for the evidence, so an admin sees e.g. "holds Mail.Read" rather than a GUID.
KNOWN_ROLES = {
    **{role_id: name for name, role_id in REQUIRED_ROLES.items()},
    "810c84a8-4a9e-49e6-bf7d-12d183f40d01": "Mail.Read",
    "693c5e45-0940-467d-9b8a-1022fb9d42ef": "Mail.ReadBasic.All",
    "b633e1c5-b582-4048-a93e-9f11b44c7e96": "Mail.Send",
    "40f97065-369a-49f4-947c-6a255697ae91": "MailboxSettings.Read",
    "6931bccd-447a-43d1-b442-00a195474933": "MailboxSettings.ReadWrite",
    "df021288-bdef-4463-88db-98f22de89214": "User.Read.All",
    "7ab1d382-f21e-4acd-a863-ba3e13f7da61": "Directory.Read.All",
    "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30": "Application.Read.All",
    "dbb9058a-0e50-45d7-ae91-66909b5d4664": "Domain.Read.All",
}

CHECK = CheckInfo(
    id="app-missing-permission",
    title="Remediation app lacks a Microsoft Graph application permission",
    severity=Severity.CRITICAL,  # without Mail.ReadWrite no message can be moved anywhere in the tenant
    predicts=UNKNOWN_REASON,
    cause=(
        "The remediation app's service principal holds no admin-consented Microsoft Graph application "
        "permission for Mail.ReadWrite (needed to move or delete messages) or Organization.Read.All (needed "
        "to read the tenant). The remediation runs as the app itself, so delegated permissions, or "
        "permissions added to the registration without admin consent, do not count."
    ),
    fix=(
        "In the app's home tenant: Entra admin center > App registrations > the app > API permissions > "
        "Add a permission > Microsoft Graph > Application permissions > Mail.ReadWrite and "
        "Organization.Read.All. Then in this tenant: Enterprise applications > the app > Permissions > "
        "Grant admin consent (Global or Privileged Role Administrator). Graph: POST "
        "/servicePrincipals/{id}/appRoleAssignments with the Microsoft Graph service principal as "
        "resourceId and the role's id as appRoleId."
    ),
    needs=("remediation_sp", "remediation_roles", "graph_sp_id"),
    scope=Scope.APP,
    explains=(UNKNOWN_REASON,),
    needs_consent=True,
    readiness="remediation app holds Mail.ReadWrite and Organization.Read.All",
    legacy_subject=r"application permission (\S+)",
    precedence=4,
)


def _delegated_scopes(snapshot: TenantSnapshot) -> dict[str, str]:
    """Delegated scope name (lower-case) -> consent type, from the app's oauth2PermissionGrants."""
    if not snapshot.remediation_delegated.ok:
        return {}
    found: dict[str, str] = {}
    for grant in snapshot.remediation_delegated.value or ():
        for scope in str(grant.get("scope") or "").split():
            found.setdefault(scope.lower(), str(grant.get("consentType") or "unknown consent"))
    return found


def graph_roles_held(snapshot: TenantSnapshot) -> set[str] | None:
    """Ids of the Microsoft Graph application roles the remediation app holds; None when not known."""
    graph_id = (snapshot.graph_sp_id.value or "").lower()
    if not graph_id or not snapshot.remediation_roles.ok or snapshot.remediation_sp.value is None:
        return None
    return {
        str(a.get("appRoleId") or "").lower()
        for a in snapshot.remediation_roles.value or ()
        if str(a.get("resourceId") or "").lower() == graph_id
    }


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    if snapshot.remediation_sp.value is None:
        raise CheckUnavailable("the remediation app has no service principal in this tenant (see app-not-consented)")
    held = graph_roles_held(snapshot)
    if held is None:
        raise CheckUnavailable("Microsoft Graph's service principal was not found in this tenant")
    held_names = sorted(KNOWN_ROLES.get(role_id, role_id) for role_id in held)
    delegated = _delegated_scopes(snapshot)
    # An Exchange RBAC for Applications assignment of "Application Mail.ReadWrite" gives the app the same
    # right inside its scope, with no Entra permission (learn.microsoft.com/exchange/permissions-exo/application-rbac).
    exchange = rbac.holds(snapshot.rbac.value or ())
    for name, role_id in REQUIRED_ROLES.items():
        if role_id in held or (name == "Mail.ReadWrite" and exchange):
            continue
        evidence = (
            f"no Microsoft Graph application permission {name} ({role_id}); application permissions "
            f"held on Microsoft Graph: {', '.join(held_names) or 'none'}"
        )
        if exchange:
            evidence += f"; held through Exchange RBAC for Applications, scoped: {rbac.describe(exchange)}"
        elif name == "Mail.ReadWrite" and not snapshot.rbac.ok:
            evidence += f"; Exchange RBAC for Applications grants not known: {snapshot.rbac.error}"
        if name.lower() in delegated:
            evidence += (
                f"; {name} is granted only as a delegated permission ({delegated[name.lower()]}), "
                "which app-only calls do not use"
            )
        yield tenant_finding(CHECK, snapshot, evidence, subject=name)
