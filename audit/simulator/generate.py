"""Deterministic synthetic tenants in the simulator's tenant-spec shape (see the package docstring).

`generate_tenant` builds one tenant with every kind of account an audit must tell apart, in realistic
proportions, with at least one of each kind from about 40 users up (enabled Teams Rooms accounts
from two rooms, about 150 users, up). `demo_tenants` builds the four demo tenants;
`demo_access_policies`, `demo_recipients` and `demo_domains` give the matching inputs.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import string
import uuid
from pathlib import Path

from . import catalog as c
from .pki import client_certificate, sha1_thumbprint
from .state import paused_gc

DEMO_REMEDIATION_APP_ID = "5c1e7d2a-9b4f-4e3c-8a6d-2f0b9e41c7d3"
DEMO_REMEDIATION_APP_NAME = "Mail Threat Remediation (demo)"
DEMO_HOME_TENANT_ID = "0d4c7f5e-2a91-4b8e-9c36-7e15a0b2d9f4"  # app owner when no home tenant is given
AUDIT_APP_NAME = "ETD Readiness Audit"
SCOPE_GROUP_NAME = "ETD Remediation Scope"
SCENARIOS = ("home", "unconsented", "disabled", "healthy", "blocked")
DISABLED_BY_MICROSOFT = "DisabledDueToViolationOfServicesAgreement"
NO_EXTENSIONS = {f"extensionAttribute{n}": None for n in range(1, 16)}  # shared by every user without one
OPT_OUT = "NoRemediation"  # CustomAttribute1 value the demo RBAC scope leaves out
RBAC_SCOPE_NAME = "ETD Remediation Scope"
RBAC_SCOPE_FILTER = f"((Department -ne 'Legal') -and (CustomAttribute1 -ne '{OPT_OUT}'))"
RBAC_UNIT_NAME = "ETD Remediation - Legal exceptions"

# (category, share of users, minimum count); the rest are ordinary licensed members.
_CATEGORIES = (
    ("shared", 0.03, 1),
    ("room", 0.01, 1),
    ("equipment", 0.005, 1),
    ("guest", 0.06, 2),
    ("unlicensed", 0.04, 1),
    ("disabled_licensed", 0.02, 1),
    ("disabled_unlicensed", 0.01, 1),
    ("hybrid_cloud", 0.08, 1),
    ("hybrid_onprem", 0.03, 1),
    ("suspended", 0.01, 1),
    ("warning", 0.01, 1),
    ("license_error", 0.01, 1),
    ("not_provisioned", 0.01, 1),
    ("foundation_only", 0.02, 1),
    ("exchange_disabled", 0.01, 1),
)
_NORMAL_SKUS = (
    (c.SPE_E3, 45),
    (c.ENTERPRISEPACK, 25),
    (c.EXCHANGESTANDARD, 15),
    (c.SPE_E5, 8),
    (c.DESKLESSPACK, 7),
)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Builder:
    def __init__(self, name: str, seed: int, now: dt.datetime) -> None:
        self.rng = random.Random(f"{name}|{seed}")
        self.name, self.now = name, now
        self.domain = f"{name}.com"
        self.initial = f"{name}.onmicrosoft.com"
        self.nicknames: set[str] = set()
        self.suffix: dict[str, int] = {}  # next number to try per name, so 100k users stay fast
        self.tenant_id = self.uid()

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def ago(self, low_days: float, high_days: float) -> dt.datetime:
        return self.now - dt.timedelta(days=self.rng.uniform(low_days, high_days))

    def nickname(self, base: str) -> str:
        nick, n = base, self.suffix.get(base.lower(), 1)
        while nick.lower() in self.nicknames:
            n += 1
            nick = f"{base}{n}"
        self.suffix[base.lower()] = n
        self.nicknames.add(nick.lower())
        return nick

    def user(self, first: str | None = None, last: str | None = None, display: str | None = None) -> dict:
        rng = self.rng
        first = first if first is not None or display else rng.choice(c.FIRST_NAMES)
        last = last if last is not None or display else rng.choice(c.LAST_NAMES)
        display = display or f"{first} {last}"
        nick = self.nickname(f"{first}.{last}" if first and last else "".join(display.split()))
        user_id = self.uid()
        # Organisation data comes from a generator of its own, so adding it changed no other generated value.
        org = random.Random(user_id)
        city, state, country = org.choice(c.LOCATIONS)
        extensions = NO_EXTENSIONS
        if first and org.random() < 0.04:
            extensions = {**NO_EXTENSIONS, "extensionAttribute1": OPT_OUT}
        return {
            "id": user_id,
            "department": org.choice(c.DEPARTMENTS) if first else None,
            "companyName": f"{self.name.capitalize()} Ltd" if first else None,
            "city": city if first else None,
            "state": state if first else None,
            "country": country if first else None,
            "onPremisesExtensionAttributes": extensions,
            "displayName": display,
            "givenName": first,
            "surname": last,
            "userPrincipalName": f"{nick}@{self.domain}",
            "mail": None,
            "mailNickname": nick,
            "jobTitle": rng.choice(c.JOB_TITLES) if first else None,
            "mobilePhone": None,
            "officeLocation": rng.choice(c.OFFICES) if first else None,
            "preferredLanguage": "en-US",
            "businessPhones": [],
            "accountEnabled": True,
            "userType": "Member",
            "usageLocation": "US",
            "createdDateTime": _iso(self.ago(3, 6 * 365)),
            "deletedDateTime": None,
            "assignedLicenses": [],
            "assignedPlans": [],
            "provisionedPlans": [],
            "licenseAssignmentStates": [],
            "onPremisesSyncEnabled": None,
            "onPremisesImmutableId": None,
            "onPremisesDistinguishedName": None,
            "onPremisesDomainName": None,
            "onPremisesSamAccountName": None,
            "onPremisesUserPrincipalName": None,
            "onPremisesLastSyncDateTime": None,
            "proxyAddresses": [],
            "externalUserState": None,
            "mailbox": None,
        }

    def mail(self, user: dict, routing: bool = False) -> None:
        """Primary SMTP = UPN, an alias at the initial domain, sometimes a short alias."""
        nick = user["mailNickname"]
        user["mail"] = user["userPrincipalName"]
        proxies = [f"SMTP:{user['mail']}", f"smtp:{nick}@{self.initial}"]
        if routing:
            proxies.append(f"smtp:{nick}@{self.name}.mail.onmicrosoft.com")
        if user["givenName"] and self.rng.random() < 0.3:
            proxies.append(f"smtp:{(user['givenName'][0] + user['surname']).lower()}@{self.domain}")
        user["proxyAddresses"] = proxies

    def license(
        self,
        user: dict,
        sku: c.Sku,
        *,
        status: str = "Enabled",
        disabled: tuple[str, ...] = (),
        by_group: str | None = None,
        exchange_provisioning: str = "Success",
    ) -> None:
        assigned = user["createdDateTime"]
        user["assignedLicenses"].append({"disabledPlans": list(disabled), "skuId": sku.id})
        for plan in sku.plans:
            off = plan.id in disabled
            user["assignedPlans"].append(
                {
                    "assignedDateTime": assigned,
                    "capabilityStatus": "Deleted" if off else status,
                    "service": plan.service,
                    "servicePlanId": plan.id,
                }
            )
            if off:
                continue
            provisioning = exchange_provisioning if plan.service == "exchange" else "Success"
            entry = {"capabilityStatus": status, "provisioningStatus": provisioning, "service": plan.service}
            if entry not in user["provisionedPlans"]:
                user["provisionedPlans"].append(entry)
        user["licenseAssignmentStates"].append(
            {
                "assignedByGroup": by_group,
                "disabledPlans": list(disabled),
                "error": None,
                "lastUpdatedDateTime": assigned,
                "skuId": sku.id,
                "state": "Active",
            }
        )

    def synced(self, user: dict) -> None:
        sam = user["mailNickname"].replace(".", "")[:20].lower()
        user.update(
            {
                "onPremisesSyncEnabled": True,
                "onPremisesImmutableId": base64.b64encode(self.rng.randbytes(16)).decode(),
                "onPremisesDistinguishedName": (f"CN={user['displayName']},OU=Staff,DC=corp,DC={self.name},DC=com"),
                "onPremisesDomainName": f"corp.{self.domain}",
                "onPremisesSamAccountName": sam,
                "onPremisesUserPrincipalName": user["userPrincipalName"],
                "onPremisesLastSyncDateTime": _iso(self.now - dt.timedelta(minutes=self.rng.randint(5, 55))),
            }
        )

    def secret(self) -> str:
        alphabet = string.ascii_letters + string.digits
        head = "".join(self.rng.choice(alphabet) for _ in range(3))
        tail = "".join(self.rng.choice(alphabet + "-_.") for _ in range(34))
        return f"{head}8Q~{tail}"


def _counts(users: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    remaining = users - max(1, users // 3)  # keep a third or more as ordinary licensed members
    for name, share, minimum in _CATEGORIES:
        take = min(max(minimum, round(users * share)), max(0, remaining))
        counts[name] = take
        remaining -= take
    return counts


def _weighted_sku(rng: random.Random) -> c.Sku:
    return rng.choices([s for s, _ in _NORMAL_SKUS], weights=[w for _, w in _NORMAL_SKUS])[0]


def generate_tenant(
    name: str,
    users: int,
    seed: int,
    scenario: str = "healthy",
    *,
    now: dt.datetime | None = None,
    home_tenant_id: str | None = None,
    remediation_audience: str | None = None,
) -> dict:
    """A tenant spec with `users` directory users (plus soft-deleted ones), deterministic by name and seed.

    scenario (the remediation app, id DEMO_REMEDIATION_APP_ID): "home" = the app's home tenant
    (application object, single-tenant, a secret expiring in 10 days and an expired certificate,
    Mail.ReadWrite as application role but Organization.Read.All only delegated, one configured
    domain unverified); "unconsented" = no service principal; "disabled" = service principal with
    both roles but disabled; "healthy" = enabled with both roles; "blocked" = enabled with both roles
    but disabled by Microsoft (disabledByMicrosoftStatus DisabledDueToViolationOfServicesAgreement).
    `now` anchors every date (default: the current minute), so pass it when comparing two generated tenants.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    if users < 1:
        raise ValueError("users must be at least 1")
    with paused_gc():
        return _generate(name, users, seed, scenario, now, home_tenant_id, remediation_audience)


def _generate(
    name: str,
    users: int,
    seed: int,
    scenario: str,
    now: dt.datetime | None,
    home_tenant_id: str | None,
    remediation_audience: str | None,
) -> dict:
    now = now or dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    b = _Builder(name, seed, now)
    rng = b.rng
    tenant_id = b.tenant_id
    license_group = b.uid()
    counts = _counts(users)
    normal = users - sum(counts.values())
    people: list[dict] = []
    kinds: dict[str, list[dict]] = {}

    def add(kind: str, user: dict) -> dict:
        people.append(user)
        kinds.setdefault(kind, []).append(user)
        return user

    def resource(kind: str, names: tuple[str, ...], index: int) -> dict:
        label = names[index % len(names)] + (f" {index // len(names) + 1}" if index >= len(names) else "")
        user = b.user(display=label)
        user.update({"givenName": None, "surname": None, "accountEnabled": False})
        b.mail(user)
        user["mailbox"] = {"purpose": kind, "location": "cloud"}
        if kind == "room" and index % 2:
            # Every second room is a Teams Rooms resource account: enabled (the device signs in) and
            # licensed with Teams Rooms Pro or Basic, neither of which carries an Exchange Online plan.
            user["accountEnabled"] = True
            b.license(user, c.TEAMS_ROOMS_PRO if index % 4 == 1 else c.TEAMS_ROOMS_BASIC)
        return user

    for _ in range(normal):
        user = b.user()
        sku = _weighted_sku(rng)
        by_group = license_group if sku is c.SPE_E3 and rng.random() < 0.6 else None
        b.license(user, sku, by_group=by_group)
        if rng.random() < 0.05:
            b.license(user, c.POWER_BI_PRO)
        b.mail(user)
        user["mailbox"] = {"purpose": "user", "location": "cloud"}
        add("licensed", user)
    for i in range(counts["shared"]):
        add("shared", resource("shared", c.SHARED_NAMES, i))
    for i in range(counts["room"]):
        add("room", resource("room", c.ROOM_NAMES, i))
    for i in range(counts["equipment"]):
        add("equipment", resource("equipment", c.EQUIPMENT_NAMES, i))
    for _ in range(counts["guest"]):
        first, last = rng.choice(c.FIRST_NAMES), rng.choice(c.LAST_NAMES)
        home = rng.choice(c.GUEST_DOMAINS)
        external = f"{first}.{last}{rng.randint(1, 99)}".lower()
        user = b.user(first, last)
        user.update(
            {
                "userPrincipalName": f"{external}_{home}#EXT#@{b.initial}",
                "mail": f"{external}@{home}",
                "mailNickname": f"{external}_{home}#EXT#",
                "userType": "Guest",
                "jobTitle": None,
                "externalUserState": rng.choice(("Accepted", "Accepted", "PendingAcceptance")),
                "proxyAddresses": [f"SMTP:{external}@{home}"],
                "usageLocation": None,
            }
        )
        add("guest", user)
    for _ in range(counts["unlicensed"]):
        add("unlicensed", b.user())
    for _ in range(counts["disabled_licensed"]):
        user = b.user()
        b.license(user, _weighted_sku(rng))
        b.mail(user)
        user.update({"accountEnabled": False, "mailbox": {"purpose": "user", "location": "cloud"}})
        add("disabled_licensed", user)
    for _ in range(counts["disabled_unlicensed"]):
        user = b.user()
        user["accountEnabled"] = False
        add("disabled_unlicensed", user)
    for _ in range(counts["hybrid_cloud"]):
        user = b.user()
        b.synced(user)
        b.license(user, c.SPE_E3, by_group=license_group if rng.random() < 0.5 else None)
        b.mail(user, routing=True)
        user["mailbox"] = {"purpose": "user", "location": "cloud"}
        add("hybrid_cloud", user)
    for i in range(counts["hybrid_onprem"]):
        user = b.user()
        b.synced(user)
        if i % 2:  # licensed for the rest of Microsoft 365, Exchange Online switched off
            b.license(user, c.SPE_E3, disabled=(c.EXCHANGE_S_ENTERPRISE.id,))
        b.mail(user, routing=True)
        user["mailbox"] = {"purpose": "user", "location": "onprem"}
        add("hybrid_onprem", user)
    for _ in range(counts["suspended"]):
        user = b.user()
        b.license(user, c.SPE_E3, status="Suspended")
        b.mail(user)
        add("suspended", user)  # mailbox inactive: Exchange refuses REST calls
    for _ in range(counts["warning"]):
        user = b.user()
        b.license(user, c.ENTERPRISEPACK, status="Warning")
        b.mail(user)
        user["mailbox"] = {"purpose": "user", "location": "cloud"}
        add("warning", user)
    for _ in range(counts["license_error"]):
        user = b.user()
        user["licenseAssignmentStates"].append(
            {
                "assignedByGroup": license_group,
                "disabledPlans": [],
                "error": "CountViolation",
                "lastUpdatedDateTime": _iso(b.ago(0.2, 20)),
                "skuId": c.ENTERPRISEPACK.id,
                "state": "Error",
            }
        )
        add("license_error", user)
    for i in range(counts["not_provisioned"]):
        user = b.user()
        if i == 0:
            user["createdDateTime"] = _iso(now - dt.timedelta(hours=3))
        b.license(user, c.SPE_E3, exchange_provisioning="PendingInput")
        add("not_provisioned", user)
    for i in range(counts["foundation_only"]):
        user = b.user()
        b.license(user, c.POWER_BI_PRO if i % 2 == 0 else c.AAD_PREMIUM_SKU)
        add("foundation_only", user)
    for _ in range(counts["exchange_disabled"]):
        user = b.user()
        b.license(user, c.ENTERPRISEPACK, disabled=(c.EXCHANGE_S_ENTERPRISE.id,))
        b.mail(user)  # had a mailbox once; the addresses stay
        add("exchange_disabled", user)

    # A few accounts created in the last two days; the first one today, after the report's refresh.
    licensed = kinds.get("licensed", [])
    midnight = now.replace(hour=0, minute=0)
    for i, user in enumerate(licensed[: max(2, round(users * 0.005))]):
        created = max(now - dt.timedelta(minutes=10), midnight) if i == 0 else b.ago(0.05, 1.9)
        user["createdDateTime"] = _iso(created)
        for plan in user["assignedPlans"]:
            plan["assignedDateTime"] = user["createdDateTime"]

    deleted: list[dict] = []
    for _ in range(max(2, round(users * 0.02))):
        user = b.user()
        b.license(user, _weighted_sku(rng))
        b.mail(user)
        user["mailbox"] = {"purpose": "user", "location": "cloud"}
        user["deletedDateTime"] = _iso(b.ago(0.1, 29.5))
        user["userPrincipalName"] = user["id"].replace("-", "") + user["userPrincipalName"]
        deleted.append(user)

    rng.shuffle(people)
    groups = _groups(b, kinds, license_group)
    client = _audit_client(b, name, seed)
    graph_sp, service_principals, applications = _apps(
        b,
        scenario,
        client,
        home_tenant_id or (tenant_id if scenario == "home" else DEMO_HOME_TENANT_ID),
        remediation_audience or ("AzureADMyOrg" if scenario == "home" else "AzureADMultipleOrgs"),
    )
    skus = _subscribed_skus(b, people)
    return {
        "tenant_id": tenant_id,
        "name": name,
        "display_name": f"{name.capitalize()} Ltd",
        "scenario": scenario,
        "verified_domains": [b.domain, b.initial, f"{name}.mail.onmicrosoft.com"],
        "unverified_domains": [f"legacy-{name}.com"] if scenario == "home" else [],
        "created": _iso(now - dt.timedelta(days=8 * 365)),
        "subscribed_skus": skus,
        "clients": [client],
        "service_principals": service_principals,
        "applications": applications,
        "users": people,
        "deleted_users": deleted,
        "groups": groups,
        "usage_report": {"refresh_date": (now - dt.timedelta(days=1)).date().isoformat(), "concealed": False},
    }


def _groups(b: _Builder, kinds: dict[str, list[dict]], license_group: str) -> list[dict]:
    rng = b.rng
    in_license_group = [
        u["id"]
        for kind in ("licensed", "hybrid_cloud", "license_error")
        for u in kinds.get(kind, [])
        if any(s.get("assignedByGroup") == license_group for s in u["licenseAssignmentStates"])
    ]
    resources = [u["id"] for kind in ("shared", "room", "equipment") for u in kinds.get(kind, [])]
    mailbox_users = [
        u["id"] for kind in ("licensed", "hybrid_cloud", "warning", "disabled_licensed") for u in kinds.get(kind, [])
    ]
    nested_users = mailbox_users[: max(1, len(mailbox_users) // 20)]
    direct = [u for u in mailbox_users[len(nested_users) :] if rng.random() < 0.9]
    sub_group = {
        "id": b.uid(),
        "displayName": "ETD Scope - Shared and Resources",
        "mail": f"etd-scope-shared@{b.domain}",
        "mailEnabled": True,
        "securityEnabled": True,
        "groupTypes": [],
        "members": resources + nested_users,
    }
    scope = {
        "id": b.uid(),
        "displayName": SCOPE_GROUP_NAME,
        "mail": f"etd-remediation-scope@{b.domain}",
        "mailEnabled": True,
        "securityEnabled": True,
        "groupTypes": [],
        "members": [sub_group["id"], *direct],
    }
    licensing = {
        "id": license_group,
        "displayName": "License - Microsoft 365 E3",
        "mail": None,
        "mailEnabled": False,
        "securityEnabled": True,
        "groupTypes": [],
        "members": in_license_group,
    }
    return [scope, sub_group, licensing]


def _audit_client(b: _Builder, name: str, seed: int) -> dict:
    cert, key = client_certificate(f"{name}-{seed}-audit")
    return {
        "client_id": b.uid(),
        "display_name": AUDIT_APP_NAME,
        "secret": b.secret(),
        "certificate_pem": cert,
        "private_key_pem": key,
        "thumbprint": sha1_thumbprint(cert),
        "roles": list(c.AUDIT_ROLES),
    }


def _assignment(b: _Builder, sp: dict, role: str, graph_sp: dict) -> dict:
    return {
        "id": base64.urlsafe_b64encode(b.rng.randbytes(32)).decode().rstrip("="),
        "appRoleId": c.GRAPH_APP_ROLES[role],
        "createdDateTime": _iso(b.ago(30, 700)),
        "deletedDateTime": None,
        "principalDisplayName": sp["displayName"],
        "principalId": sp["id"],
        "principalType": "ServicePrincipal",
        "resourceDisplayName": "Microsoft Graph",
        "resourceId": graph_sp["id"],
    }


def _service_principal(b: _Builder, app_id: str, name: str, audience: str, owner: str, enabled=True) -> dict:
    return {
        "id": b.uid(),
        "appId": app_id,
        "displayName": name,
        "accountEnabled": enabled,
        "signInAudience": audience,
        "appOwnerOrganizationId": owner,
        "servicePrincipalType": "Application",
        "appRoles": [],
        "appRoleAssignments": [],
        "oauth2PermissionGrants": [],
    }


def _application(b: _Builder, app_id: str, name: str, audience: str, secret_end, cert_end, thumbprint) -> dict:
    return {
        "id": b.uid(),
        "appId": app_id,
        "displayName": name,
        "signInAudience": audience,
        "createdDateTime": _iso(b.ago(400, 900)),
        "passwordCredentials": [
            {
                "customKeyIdentifier": None,
                "displayName": "automation",
                "endDateTime": _iso(secret_end),
                "hint": "8Q~",
                "keyId": b.uid(),
                "secretText": None,
                "startDateTime": _iso(secret_end - dt.timedelta(days=365)),
            }
        ],
        "keyCredentials": [
            {
                "customKeyIdentifier": thumbprint,
                "displayName": f"CN={name}",
                "endDateTime": _iso(cert_end),
                "key": None,
                "keyId": b.uid(),
                "startDateTime": _iso(cert_end - dt.timedelta(days=365)),
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
            }
        ],
        "requiredResourceAccess": [],
    }


def _apps(b: _Builder, scenario: str, client: dict, owner: str, audience: str):
    now = b.now
    graph_sp = _service_principal(b, c.GRAPH_APP_ID, "Microsoft Graph", "AzureADMultipleOrgs", c.MICROSOFT_TENANT_ID)
    graph_sp["appRoles"] = [
        {
            "allowedMemberTypes": ["Application"],
            "description": f"Allows the app to use {value} without a user.",
            "displayName": value,
            "id": role_id,
            "isEnabled": True,
            "origin": "Application",
            "value": value,
        }
        for value, role_id in c.GRAPH_APP_ROLES.items()
    ]
    audit_sp = _service_principal(b, client["client_id"], AUDIT_APP_NAME, "AzureADMyOrg", b.tenant_id)
    audit_sp["appRoleAssignments"] = [_assignment(b, audit_sp, role, graph_sp) for role in client["roles"]]
    audit_app = _application(
        b,
        client["client_id"],
        AUDIT_APP_NAME,
        "AzureADMyOrg",
        now + dt.timedelta(days=300),
        now + dt.timedelta(days=364),
        client["thumbprint"],
    )
    audit_app["requiredResourceAccess"] = [
        {
            "resourceAppId": c.GRAPH_APP_ID,
            "resourceAccess": [{"id": c.GRAPH_APP_ROLES[r], "type": "Role"} for r in client["roles"]],
        }
    ]
    service_principals, applications = [graph_sp, audit_sp], [audit_app]
    if scenario != "unconsented":
        sp = _service_principal(
            b,
            DEMO_REMEDIATION_APP_ID,
            DEMO_REMEDIATION_APP_NAME,
            audience,
            owner,
            enabled=scenario != "disabled",
        )
        if scenario == "blocked":
            sp["disabledByMicrosoftStatus"] = DISABLED_BY_MICROSOFT
        roles = ["Mail.ReadWrite"] if scenario == "home" else ["Mail.ReadWrite", "Organization.Read.All"]
        sp["appRoleAssignments"] = [_assignment(b, sp, role, graph_sp) for role in roles]
        if scenario == "home":
            sp["oauth2PermissionGrants"] = [
                {
                    "clientId": sp["id"],
                    "consentType": "AllPrincipals",
                    "id": b.uid().replace("-", "")[:43],
                    "principalId": None,
                    "resourceId": graph_sp["id"],
                    "scope": "Organization.Read.All",
                }
            ]
        service_principals.append(sp)
    if scenario == "home":
        app = _application(
            b,
            DEMO_REMEDIATION_APP_ID,
            DEMO_REMEDIATION_APP_NAME,
            audience,
            now + dt.timedelta(days=10),
            now - dt.timedelta(days=5),
            "".join(b.rng.choice("0123456789ABCDEF") for _ in range(40)),
        )
        app["requiredResourceAccess"] = [
            {
                "resourceAppId": c.GRAPH_APP_ID,
                "resourceAccess": [
                    {"id": c.GRAPH_APP_ROLES["Mail.ReadWrite"], "type": "Role"},
                    {"id": c.GRAPH_APP_ROLES["Organization.Read.All"], "type": "Role"},
                ],
            }
        ]
        applications.append(app)
    return graph_sp, service_principals, applications


def _subscribed_skus(b: _Builder, people: list[dict]) -> list[dict]:
    consumed: dict[str, int] = {}
    errors: set[str] = set()
    for user in people:
        for lic in user["assignedLicenses"]:
            consumed[lic["skuId"]] = consumed.get(lic["skuId"], 0) + 1
        for state in user["licenseAssignmentStates"]:
            if state["state"] == "Error":
                errors.add(state["skuId"])
                consumed.setdefault(state["skuId"], 0)
    skus = []
    for sku in c.SKUS:
        if sku.id not in consumed:
            continue
        used = consumed[sku.id]
        enabled = used if sku.id in errors else used + b.rng.randint(0, 15)
        skus.append(
            {
                "accountId": b.tenant_id,
                "accountName": b.name.upper(),
                "appliesTo": "User",
                "capabilityStatus": "Enabled",
                "consumedUnits": used,
                "id": f"{b.tenant_id}_{sku.id}",
                "prepaidUnits": {"enabled": enabled, "lockedOut": 0, "suspended": 0, "warning": 0},
                "servicePlans": [
                    {
                        "appliesTo": "User",
                        "provisioningStatus": "Success",
                        "servicePlanId": p.id,
                        "servicePlanName": p.name,
                    }
                    for p in sku.plans
                ],
                "skuId": sku.id,
                "skuPartNumber": sku.part_number,
                "subscriptionIds": [b.uid()],
            }
        )
    return skus


def demo_tenants(users: int = 500, seed: int = 7, *, now: dt.datetime | None = None) -> list[dict]:
    """contoso (the remediation app's home, `users` users), fabrikam (not consented, users//4, usage
    report names concealed), northwind (app disabled, users//5) and tailspin (users//10: no Exchange
    Online organisation, and the app disabled by Microsoft)."""
    now = now or dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    home = generate_tenant("contoso", users, seed, "home", now=now)
    common = {"now": now, "home_tenant_id": home["tenant_id"], "remediation_audience": "AzureADMyOrg"}
    fabrikam = generate_tenant("fabrikam", max(1, users // 4), seed, "unconsented", **common)
    fabrikam["usage_report"]["concealed"] = True
    northwind = generate_tenant("northwind", max(1, users // 5), seed, "disabled", **common)
    _scope_with_rbac(northwind)
    tailspin = generate_tenant("tailspin", max(1, users // 10), seed, "blocked", **common)
    tailspin["exchange_online"] = False
    return [home, fabrikam, northwind, tailspin]


def _scope_with_rbac(tenant: dict) -> None:
    """The remediation app holds Mail.ReadWrite only through Exchange RBAC for Applications: the Entra grant is
    removed, and `rbac` lists the role assignments (a management scope and an administrative unit) that the
    demo exports describe. The audit's own app may read administrative units."""
    rng = random.Random(f"rbac|{tenant['tenant_id']}")
    sp = next(s for s in tenant["service_principals"] if s["appId"] == DEMO_REMEDIATION_APP_ID)
    mail_role = c.GRAPH_APP_ROLES["Mail.ReadWrite"]
    sp["appRoleAssignments"] = [a for a in sp["appRoleAssignments"] if a["appRoleId"] != mail_role]
    legal = [u["id"] for u in tenant["users"] if u.get("department") == "Legal" and u.get("mailbox")]
    unit = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "displayName": RBAC_UNIT_NAME,
        "description": "Legal mailboxes remediation may still reach",
        "visibility": None,
        "members": legal[: max(1, len(legal) // 2)],
    }
    tenant["administrative_units"] = [unit]
    tenant["rbac"] = [
        {"role": "Application Mail.ReadWrite", "scope": RBAC_SCOPE_NAME},
        {"role": "Application Mail.ReadWrite", "unit": unit["id"]},
    ]
    client = tenant["clients"][0]
    client["roles"] = [*client["roles"], "AdministrativeUnit.Read.All"]


def _exchange_name(rng: random.Random, name: str) -> str:
    """Exchange's object name for a group it created: the name with a creation timestamp appended."""
    stamp = dt.datetime(2021, 1, 1) + dt.timedelta(seconds=rng.randint(0, 4 * 365 * 86400))
    return name + stamp.strftime("%Y%m%d%H%M%S")


def demo_domains(tenant: dict) -> list[str]:
    """The domains the remediation product would be set up for: mail domains, verified or not."""
    verified = [d for d in tenant.get("verified_domains", []) if not d.lower().endswith(".onmicrosoft.com")]
    return verified + list(tenant.get("unverified_domains", []))


def demo_access_policies(tenants: list[dict]) -> list[dict]:
    """Rows like a JSON export of Get-ApplicationAccessPolicy: the remediation app restricted to the scope
    group in its home tenant, and denied on one mailbox there. As Exchange shows them: ScopeIdentity is
    Exchange's object name (a group's carries a creation timestamp), ScopeIdentityRaw `<SID>;<object id>`."""
    rows = []
    for tenant in tenants:
        if tenant.get("scenario") != "home":
            continue
        rng = random.Random(tenant["tenant_id"])
        group = next(g for g in tenant["groups"] if g["displayName"] == SCOPE_GROUP_NAME)
        scope_sid = _sid(rng)
        rows.append(
            {
                "Identity": f"{tenant['tenant_id']}\\{DEMO_REMEDIATION_APP_ID}:{scope_sid};{group['id']}",
                "AppId": DEMO_REMEDIATION_APP_ID,
                "ScopeName": group["displayName"],
                "ScopeIdentity": _exchange_name(rng, group["displayName"]),
                "ScopeIdentityRaw": f"{scope_sid};{group['id']}",
                "Description": "Remediation limited to mailboxes in the ETD scope group",
                "AccessRight": "RestrictAccess",
                "ShardType": "All",
                "IsValid": True,
            }
        )
        vip = next(
            (
                u
                for u in tenant["users"]
                if u.get("mailbox") == {"purpose": "user", "location": "cloud"}
                and u["accountEnabled"]
                and u["userType"] == "Member"
            ),
            None,
        )
        if vip is None:
            continue
        vip_sid = _sid(rng)
        rows.append(
            {
                "Identity": f"{tenant['tenant_id']}\\{DEMO_REMEDIATION_APP_ID}:{vip_sid};{vip['id']}",
                "AppId": DEMO_REMEDIATION_APP_ID,
                "ScopeName": vip["displayName"],
                "ScopeIdentity": vip["mailNickname"],
                "ScopeIdentityRaw": f"{vip_sid};{vip['id']}",
                "Description": "Executive mailbox excluded from automated remediation",
                "AccessRight": "DenyAccess",
                "ShardType": "All",
                "IsValid": True,
            }
        )
    return rows


def demo_rbac_exports(tenants: list[dict]) -> dict[str, list[dict]]:
    """What Get-ManagementRoleAssignment -RoleAssigneeType ServicePrincipal, Get-ManagementScope and
    Get-ServicePrincipal show for the tenants' `rbac` grants, by export name ("role_assignments",
    "management_scopes", "service_principals")."""
    assignments: list[dict] = []
    scopes: dict[str, dict] = {}
    pointers: list[dict] = []
    for tenant in tenants:
        if not tenant.get("rbac"):
            continue
        sp = next(s for s in tenant["service_principals"] if s["appId"] == DEMO_REMEDIATION_APP_ID)
        pointers.append(
            {
                "DisplayName": sp["displayName"],
                "AppId": sp["appId"],
                "ObjectId": sp["id"],
                "Identity": sp["id"],
                "Name": sp["id"],
            }
        )
        for i, grant in enumerate(tenant["rbac"]):
            row = {
                "Name": f"{grant['role']}-{sp['id'][:8]}-{i}",
                "Role": grant["role"],
                # Sources differ on what RoleAssignee shows; the demo gives both forms, one per grant.
                "RoleAssignee": sp["id"] if i % 2 else sp["displayName"],
                "RoleAssigneeName": sp["id"] if i % 2 else sp["displayName"],
                "RoleAssigneeType": "ServicePrincipal",
                "AssignmentMethod": "Direct",
                "Enabled": True,
                "CustomResourceScope": grant.get("scope"),
                "RecipientWriteScope": "AdministrativeUnit" if grant.get("unit") else "CustomRecipientScope",
                "CustomRecipientWriteScope": grant.get("unit"),
            }
            assignments.append(row)
            if grant.get("scope"):
                scopes[grant["scope"]] = {
                    "Name": grant["scope"],
                    "RecipientRoot": None,
                    "RecipientFilter": RBAC_SCOPE_FILTER,
                    "ScopeRestrictionType": "RecipientScope",
                    "Exclusive": False,
                }
    return {"role_assignments": assignments, "management_scopes": list(scopes.values()), "service_principals": pointers}


def _sid(rng: random.Random) -> str:
    parts = "-".join(str(rng.randint(10**8, 4 * 10**9)) for _ in range(3))
    return f"S-1-5-21-{parts}-{rng.randint(1000, 99999)}"


def demo_recipients(tenants: list[dict]) -> list[str]:
    """Addresses a triage might be asked about: real ones in mixed case, smtp: alias forms, and some
    nobody owns."""
    out: list[str] = []
    for tenant in tenants:
        rng = random.Random(f"recipients|{tenant['tenant_id']}")
        with_mail = [u for u in tenant["users"] if u.get("mail")]
        for user in rng.sample(with_mail, min(6, len(with_mail))):
            address = user["mail"]
            out.append("".join(ch.upper() if rng.random() < 0.3 else ch.lower() for ch in address))
        aliases = [p for u in with_mail for p in u.get("proxyAddresses", []) if p.startswith("smtp:")]
        out.extend(rng.sample(aliases, min(2, len(aliases))))
        for user in tenant.get("deleted_users", [])[:1]:
            if user.get("mail"):
                out.append(user["mail"])
        domain = tenant["verified_domains"][0]
        out.extend([f"nobody@{domain}", f"Former.Employee@{domain}"])
    out.append("someone@unrelated-example.org")
    return out


def load_tenant(path: str | Path) -> dict:
    """A tenant spec from a JSON file; optional sections default to empty."""
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [key for key in ("tenant_id", "name", "users") if key not in spec]
    if missing:
        raise ValueError(f"{path}: tenant spec lacks {', '.join(missing)}")
    for key in (
        "verified_domains",
        "unverified_domains",
        "subscribed_skus",
        "clients",
        "service_principals",
        "applications",
        "deleted_users",
        "groups",
    ):
        spec.setdefault(key, [])
    spec.setdefault("display_name", spec["name"])
    return spec
