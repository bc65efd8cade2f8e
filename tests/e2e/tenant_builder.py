"""Hand-written tenant specs for end-to-end tests: one exact case per user, served by the simulator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from audit.clouds import GRAPH_APP_ID

REMEDIATION_APP_ID = "7d3c9d2e-5b1a-4c8e-9f6a-1e2d3c4b5a69"
MAIL_READWRITE = "e2a3a72e-5f79-4c64-b1b1-878b674786c9"
ORG_READ_ALL = "498476ce-e0fe-48b0-b801-37ba7e2685c6"

E3 = ("6fd2c87f-b296-42f0-b197-1e91e994b900", "ENTERPRISEPACK", "efb87545-963c-4e0d-99df-69c6916d9eb0")
EXO_P1 = ("4b9405b0-7788-4568-add1-99614e613b69", "EXCHANGESTANDARD", "9aaf7827-d63c-4b61-89c3-182f06f82e5c")
# Power BI (free): its only Exchange plan is EXCHANGE_S_FOUNDATION, which gives no mailbox.
PBI_FREE = ("a403ebcc-fae0-4ca2-8c8c-7a907fd6c235", "POWER_BI_STANDARD", "113feb6c-3fe4-4440-bddc-54d774bf0318")

AUDIT_ROLES = [
    "User.Read.All",
    "Organization.Read.All",
    "Application.Read.All",
    "MailboxSettings.Read",
    "GroupMember.Read.All",
    "Reports.Read.All",
    "Mail.Send",
]


def as_built(**options: object) -> dict:
    """make_config options for tenants made here: their remediation app, and no home tenant or configured
    domains unless the test names them."""
    return {"app_id": REMEDIATION_APP_ID, "home": None, "domains": {}, **options}


def _id(name: str, tenant: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{name}"))


class TenantBuilder:
    def __init__(self, name: str, domain: str | None = None, secret: str = "s3cret-value-for-tests"):
        self.name = name
        self.domain = domain or f"{name}.example"
        self.tenant_id = _id("tenant", name)
        self.now = datetime.now(UTC)
        self.spec: dict = {
            "tenant_id": self.tenant_id,
            "name": name,
            "display_name": name.title(),
            "verified_domains": [self.domain, f"{name}.onmicrosoft.com"],
            "subscribed_skus": [self._sku(*E3), self._sku(*EXO_P1), self._sku(*PBI_FREE)],
            "clients": [{"client_id": _id("audit-client", name), "secret": secret, "roles": list(AUDIT_ROLES)}],
            "service_principals": [
                {
                    "id": _id("graph-sp", name),
                    "appId": GRAPH_APP_ID,
                    "displayName": "Microsoft Graph",
                    "accountEnabled": True,
                    "signInAudience": "AzureADMultipleOrgs",
                    "appRoleAssignments": [],
                    "oauth2PermissionGrants": [],
                }
            ],
            "applications": [],
            "users": [],
            "deleted_users": [],
            "groups": [],
        }

    @property
    def graph_sp_id(self) -> str:
        return _id("graph-sp", self.name)

    def _sku(self, sku_id: str, part: str, plan_id: str) -> dict:
        return {
            "skuId": sku_id,
            "skuPartNumber": part,
            "capabilityStatus": "Enabled",
            "consumedUnits": 1,
            "prepaidUnits": {"enabled": 100, "suspended": 0, "warning": 0},
            "servicePlans": [
                {
                    "servicePlanId": plan_id,
                    "servicePlanName": "plan",
                    "appliesTo": "User",
                    "provisioningStatus": "Success",
                }
            ],
        }

    def remediation_app(
        self,
        *,
        roles=(MAIL_READWRITE, ORG_READ_ALL),
        delegated: str = "",
        enabled: bool = True,
        audience: str = "AzureADMultipleOrgs",
    ) -> TenantBuilder:
        sp_id = _id("remediation-sp", self.name)
        self.spec["service_principals"].append(
            {
                "id": sp_id,
                "appId": REMEDIATION_APP_ID,
                "displayName": "Mail Threat Remediation",
                "accountEnabled": enabled,
                "signInAudience": audience,
                "appOwnerOrganizationId": _id("vendor", "vendor"),
                "appRoleAssignments": [
                    {
                        "id": _id(f"ra-{r}", self.name),
                        "appRoleId": r,
                        "principalId": sp_id,
                        "principalType": "ServicePrincipal",
                        "resourceId": self.graph_sp_id,
                        "resourceDisplayName": "Microsoft Graph",
                        "createdDateTime": "2025-01-01T00:00:00Z",
                    }
                    for r in roles
                ],
                "oauth2PermissionGrants": (
                    [
                        {
                            "id": _id("grant", self.name),
                            "clientId": sp_id,
                            "consentType": "AllPrincipals",
                            "resourceId": self.graph_sp_id,
                            "scope": delegated,
                        }
                    ]
                    if delegated
                    else []
                ),
            }
        )
        return self

    def user(
        self,
        nick: str,
        *,
        license=None,
        status: str = "Enabled",
        mailbox: str | None = "user",
        location: str = "cloud",
        enabled: bool = True,
        user_type: str = "Member",
        synced: bool = False,
        by_group: bool = False,
        provisioning: str = "Success",
        license_error: str | None = None,
        aliases: tuple[str, ...] = (),
        mail: bool = True,
        created_days_ago: int = 400,
    ) -> str:
        uid = _id(nick, self.name)
        guest = f"{nick}_ext.example#EXT#@{self.name}.onmicrosoft.com"
        upn = f"{nick}@{self.domain}" if user_type == "Member" else guest
        address = f"{nick}@{self.domain}" if mail else None
        plans, licenses, states, provisioned = [], [], [], []
        if license:
            sku_id, _, plan_id = license
            licenses.append({"skuId": sku_id, "disabledPlans": []})
            if not license_error:
                plans.append(
                    {
                        "servicePlanId": plan_id,
                        "service": "exchange",
                        "capabilityStatus": status,
                        "assignedDateTime": "2025-01-01T00:00:00Z",
                    }
                )
                provisioned.append(
                    {"service": "exchange", "capabilityStatus": status, "provisioningStatus": provisioning}
                )
            states.append(
                {
                    "skuId": sku_id,
                    "state": "Error" if license_error else "Active",
                    "error": license_error or "None",
                    "disabledPlans": [],
                    "assignedByGroup": _id("license-group", self.name) if by_group else None,
                    "lastUpdatedDateTime": "2025-01-01T00:00:00Z",
                }
            )
        self.spec["users"].append(
            {
                "id": uid,
                "userPrincipalName": upn,
                "displayName": nick.replace("-", " ").title(),
                "mail": address,
                "mailNickname": nick,
                "proxyAddresses": ([f"SMTP:{address}"] + [f"smtp:{a}" for a in aliases]) if address else [],
                "userType": user_type,
                "accountEnabled": enabled,
                "assignedLicenses": licenses,
                "assignedPlans": plans,
                "provisionedPlans": provisioned,
                "licenseAssignmentStates": states,
                "onPremisesSyncEnabled": True if synced else None,
                "onPremisesImmutableId": f"imm-{nick}" if synced else None,
                "createdDateTime": (self.now - timedelta(days=created_days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "mailbox": {"purpose": mailbox, "location": location} if mailbox else None,
            }
        )
        return uid

    def deleted_user(self, nick: str, days_ago: int) -> str:
        uid = _id(nick, self.name)
        self.spec["deleted_users"].append(
            {
                "id": uid,
                "userPrincipalName": f"{uid.replace('-', '')}{nick}@{self.domain}",
                "displayName": nick.title(),
                "mail": f"{nick}@{self.domain}",
                "userType": "Member",
                "accountEnabled": True,
                "proxyAddresses": [f"SMTP:{nick}@{self.domain}"],
                "assignedLicenses": [],
                "assignedPlans": [],
                "provisionedPlans": [],
                "licenseAssignmentStates": [],
                "deletedDateTime": (self.now - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        return uid

    def group(self, name: str, members: list[str]) -> str:
        gid = _id(f"group-{name}", self.name)
        self.spec["groups"].append(
            {"id": gid, "displayName": name, "mail": f"{name}@{self.domain}", "members": members}
        )
        return gid

    def application(
        self, *, audience: str = "AzureADMyOrg", secret_days: int = 365, cert_days: int | None = None
    ) -> TenantBuilder:
        def when(days: int) -> str:
            return (self.now + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

        self.spec["applications"].append(
            {
                "id": _id("app-object", self.name),
                "appId": REMEDIATION_APP_ID,
                "displayName": "Mail Threat Remediation",
                "signInAudience": audience,
                "passwordCredentials": [
                    {
                        "keyId": _id("secret", self.name),
                        "displayName": "main",
                        "startDateTime": when(-300),
                        "endDateTime": when(secret_days),
                    }
                ],
                "keyCredentials": (
                    [
                        {
                            "keyId": _id("cert", self.name),
                            "displayName": "CN=remediation",
                            "type": "AsymmetricX509Cert",
                            "usage": "Verify",
                            "startDateTime": when(-300),
                            "endDateTime": when(cert_days),
                        }
                    ]
                    if cert_days is not None
                    else []
                ),
            }
        )
        return self
