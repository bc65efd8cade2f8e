"""One tenant as the server holds it: the spec plus the indexes that make lookups and paging cheap."""

from __future__ import annotations

import contextlib
import gc
import threading

from . import catalog as c

USER_DEFAULT = tuple(
    (
        "businessPhones displayName givenName jobTitle mail mobilePhone officeLocation preferredLanguage "
        "surname userPrincipalName id"
    ).split()
)
USER_PROPERTIES = tuple(
    (
        "id accountEnabled ageGroup assignedLicenses assignedPlans businessPhones city companyName "
        "country createdDateTime creationType deletedDateTime department displayName employeeId "
        "externalUserState externalUserStateChangeDateTime givenName identities imAddresses jobTitle "
        "licenseAssignmentStates mail mailNickname mobilePhone officeLocation onPremisesDistinguishedName "
        "onPremisesDomainName onPremisesExtensionAttributes onPremisesImmutableId "
        "onPremisesLastSyncDateTime onPremisesSamAccountName onPremisesSecurityIdentifier "
        "onPremisesSyncEnabled onPremisesUserPrincipalName otherMails passwordPolicies postalCode "
        "preferredLanguage provisionedPlans proxyAddresses showInAddressList state streetAddress surname "
        "usageLocation userPrincipalName userType employeeHireDate employeeType faxNumber "
        "securityIdentifier signInActivity signInSessionsValidFromDateTime"
    ).split()
)
# Returned only when a single user is read; selecting them on /users answers 501.
USER_SINGLE_ONLY = tuple(
    (
        "aboutMe birthday hireDate interests mailboxSettings mySite pastProjects preferredName "
        "responsibilities schools skills"
    ).split()
)
USER_SELECTABLE = {p.lower(): p for p in USER_PROPERTIES + USER_SINGLE_ONLY}
USER_HIDDEN = frozenset({"mailbox"})  # simulator-only keys
SP_HIDDEN = frozenset({"appRoleAssignments", "oauth2PermissionGrants"})
GROUP_HIDDEN = frozenset({"members"})


@contextlib.contextmanager
def paused_gc():
    """Building 100k-user structures allocates millions of objects; cyclic GC passes would triple the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class TenantState:
    def __init__(self, spec: dict) -> None:
        with paused_gc():
            self._build(spec)

    def _build(self, spec: dict) -> None:
        self.spec = spec
        self.id: str = spec["tenant_id"]
        self.name: str = spec["name"]
        self.users: list[dict] = spec.get("users", [])
        self.deleted: list[dict] = spec.get("deleted_users", [])
        self.position = {u["id"]: i for i, u in enumerate(self.users)}
        self.by_key: dict[str, dict] = {}
        self.by_mail: dict[str, list[int]] = {}
        self.by_proxy: dict[str, list[int]] = {}
        self.by_upn: dict[str, list[int]] = {}
        for i, user in enumerate(self.users):
            self.by_key[user["id"].lower()] = user
            upn = (user.get("userPrincipalName") or "").lower()
            if upn:
                self.by_key[upn] = user
                self.by_upn.setdefault(upn, []).append(i)
            if user.get("mail"):
                self.by_mail.setdefault(user["mail"].lower(), []).append(i)
            for proxy in user.get("proxyAddresses") or []:
                self.by_proxy.setdefault(proxy.lower(), []).append(i)
        self.deleted_position = {u["id"]: i for i, u in enumerate(self.deleted)}
        self.deleted_keys = {u["id"].lower() for u in self.deleted} | {
            (u.get("userPrincipalName") or "").lower() for u in self.deleted
        }
        self.service_principals: list[dict] = spec.get("service_principals", [])
        self.applications: list[dict] = spec.get("applications", [])
        self.groups: list[dict] = spec.get("groups", [])
        self.group_by_id = {g["id"].lower(): g for g in self.groups}
        self.clients = {cl["client_id"].lower(): cl for cl in spec.get("clients", [])}
        self.verified: list[str] = list(spec.get("verified_domains", []))
        self.names = {self.id.lower(), *(d.lower() for d in self.verified)}
        self.graph_sp = self.service_principal(app_id=c.GRAPH_APP_ID)
        self.lock = threading.Lock()  # guards the mutable mail state below
        self.messages: dict[str, dict] = {}  # draft id -> {"user", "message", "attachments"}
        self.upload_sessions: dict[str, dict] = {}

    def user(self, key: str) -> dict | None:
        return self.by_key.get(key.lower())

    def service_principal(self, *, app_id: str | None = None, object_id: str | None = None) -> dict | None:
        for sp in self.service_principals:
            if (app_id and sp["appId"].lower() == app_id.lower()) or (
                object_id and sp["id"].lower() == object_id.lower()
            ):
                return sp
        return None

    def application(self, *, app_id: str | None = None, object_id: str | None = None) -> dict | None:
        for app in self.applications:
            if (app_id and app["appId"].lower() == app_id.lower()) or (
                object_id and app["id"].lower() == object_id.lower()
            ):
                return app
        return None

    def sp_id_of(self, app_id: str) -> str | None:
        sp = self.service_principal(app_id=app_id)
        return sp["id"] if sp else None

    def transitive_user_ids(self, group_id: str) -> list[str]:
        """Users reachable from a group through nested groups, each once, in a stable order."""
        seen_groups: set[str] = set()
        out: list[str] = []
        seen_users: set[str] = set()
        stack = [group_id.lower()]
        while stack:
            gid = stack.pop(0)
            if gid in seen_groups or gid not in self.group_by_id:
                continue
            seen_groups.add(gid)
            for member in self.group_by_id[gid]["members"]:
                key = member.lower()
                if key in self.group_by_id:
                    stack.append(key)
                elif key in self.by_key and key not in seen_users:
                    seen_users.add(key)
                    out.append(self.by_key[key]["id"])
        return out

    def domains(self) -> list[dict]:
        rows = []
        initial = next((d for d in self.verified if d.lower().endswith(".onmicrosoft.com")), None)
        default = next((d for d in self.verified if d != initial), initial)
        for name in self.verified:
            rows.append(_domain(name, True, name == default, name == initial))
        for name in self.spec.get("unverified_domains", []):
            rows.append(_domain(name, False, False, False))
        return rows


def _domain(name: str, verified: bool, default: bool, initial: bool) -> dict:
    return {
        "authenticationType": "Managed",
        "availabilityStatus": None,
        "id": name,
        "isAdminManaged": True,
        "isDefault": default,
        "isInitial": initial,
        "isRoot": True,
        "isVerified": verified,
        "passwordNotificationWindowInDays": 14,
        "passwordValidityPeriodInDays": 2147483647,
        "supportedServices": ["Email", "OfficeCommunicationsOnline"] if verified else [],
        "state": None,
    }


# Properties $select may name per entity (Graph v1.0); absent ones come back as null.
PROPERTIES: dict[str, tuple[str, ...]] = {
    "servicePrincipal": tuple(
        (
            "id accountEnabled addIns alternativeNames appDescription appDisplayName appId "
            "applicationTemplateId appOwnerOrganizationId appRoleAssignmentRequired appRoles "
            "createdDateTime deletedDateTime description disabledByMicrosoftStatus displayName homepage "
            "info isDisabled keyCredentials loginUrl logoutUrl notes notificationEmailAddresses "
            "oauth2PermissionScopes passwordCredentials preferredSingleSignOnMode replyUrls "
            "servicePrincipalNames servicePrincipalType signInAudience tags tokenEncryptionKeyId "
            "verifiedPublisher"
        ).split()
    ),
    "application": tuple(
        (
            "id api appId applicationTemplateId appRoles createdDateTime deletedDateTime description "
            "disabledByMicrosoftStatus displayName groupMembershipClaims identifierUris info isDisabled "
            "isDeviceOnlyAuthSupported isFallbackPublicClient keyCredentials notes optionalClaims "
            "passwordCredentials publicClient publisherDomain requiredResourceAccess "
            "serviceManagementReference signInAudience spa tags tokenEncryptionKeyId uniqueName "
            "verifiedPublisher web"
        ).split()
    ),
    "group": tuple(
        (
            "id assignedLicenses classification createdDateTime deletedDateTime description displayName "
            "expirationDateTime groupTypes isAssignableToRole mail mailEnabled mailNickname "
            "membershipRule membershipRuleProcessingState onPremisesSyncEnabled proxyAddresses "
            "renewedDateTime securityEnabled securityIdentifier visibility"
        ).split()
    ),
    "organization": tuple(
        (
            "id assignedPlans businessPhones city country countryLetterCode createdDateTime "
            "defaultUsageLocation deletedDateTime displayName marketingNotificationEmails "
            "onPremisesLastSyncDateTime onPremisesSyncEnabled postalCode preferredLanguage privacyProfile "
            "provisionedPlans securityComplianceNotificationMails securityComplianceNotificationPhones "
            "state street technicalNotificationMails tenantType verifiedDomains"
        ).split()
    ),
    "domain": tuple(
        (
            "id authenticationType availabilityStatus isAdminManaged isDefault isInitial isRoot "
            "isVerified passwordNotificationWindowInDays passwordValidityPeriodInDays state "
            "supportedServices"
        ).split()
    ),
    "subscribedSku": tuple(
        (
            "id accountId accountName appliesTo capabilityStatus consumedUnits prepaidUnits servicePlans "
            "skuId skuPartNumber subscriptionIds"
        ).split()
    ),
    "appRoleAssignment": tuple(
        (
            "id appRoleId createdDateTime deletedDateTime principalDisplayName principalId principalType "
            "resourceDisplayName resourceId"
        ).split()
    ),
    "oAuth2PermissionGrant": tuple(("id clientId consentType principalId resourceId scope").split()),
}
