"""The tenant generator: determinism, every category present, the demo inputs, the config it prints."""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib

import pytest

from audit.simulator import (
    DEMO_REMEDIATION_APP_ID,
    SCOPE_GROUP_NAME,
    demo_access_policies,
    demo_domains,
    demo_recipients,
    demo_tenants,
    generate_tenant,
    load_tenant,
)
from audit.simulator.catalog import EXCHANGE_S_FOUNDATION, GRAPH_APP_ID, GRAPH_APP_ROLES, MAILBOX_PLANS

NOW = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)


def test_same_seed_same_tenant_other_seed_other_tenant():
    first = generate_tenant("contoso", 120, seed=5, scenario="home", now=NOW)
    again = generate_tenant("contoso", 120, seed=5, scenario="home", now=NOW)
    other = generate_tenant("contoso", 120, seed=6, scenario="home", now=NOW)
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert first["tenant_id"] != other["tenant_id"]
    assert {u["id"] for u in first["users"]}.isdisjoint({u["id"] for u in other["users"]})


def _plans(user: dict, status: str | None = None) -> set[str]:
    return {p["servicePlanId"] for p in user["assignedPlans"] if status is None or p["capabilityStatus"] == status}


CATEGORIES = {
    "licensed member with a cloud mailbox": lambda u: (
        u["accountEnabled"]
        and u["userType"] == "Member"
        and _plans(u, "Enabled") & MAILBOX_PLANS
        and u["mailbox"] == {"purpose": "user", "location": "cloud"}
    ),
    "unlicensed member without mailbox": lambda u: (
        u["accountEnabled"]
        and u["userType"] == "Member"
        and not u["assignedLicenses"]
        and not u["licenseAssignmentStates"]
        and u["mailbox"] is None
    ),
    "shared mailbox": lambda u: (
        u["mailbox"] == {"purpose": "shared", "location": "cloud"}
        and not u["accountEnabled"]
        and not u["assignedLicenses"]
    ),
    "room mailbox": lambda u: u["mailbox"] == {"purpose": "room", "location": "cloud"} and not u["accountEnabled"],
    "equipment mailbox": lambda u: u["mailbox"] == {"purpose": "equipment", "location": "cloud"},
    "guest": lambda u: u["userType"] == "Guest" and "#EXT#" in u["userPrincipalName"],
    "disabled but licensed with a mailbox": lambda u: (
        not u["accountEnabled"] and u["assignedLicenses"] and u["mailbox"] is not None
    ),
    "disabled without licence": lambda u: (
        not u["accountEnabled"] and not u["assignedLicenses"] and u["mailbox"] is None
    ),
    "hybrid with a cloud mailbox": lambda u: (
        u["onPremisesSyncEnabled"]
        and u["onPremisesImmutableId"]
        and u["mailbox"] == {"purpose": "user", "location": "cloud"}
    ),
    "hybrid with an on-premises mailbox": lambda u: (
        u["onPremisesSyncEnabled"]
        and u["mail"]
        and u["proxyAddresses"]
        and not _plans(u, "Enabled") & MAILBOX_PLANS
        and u["mailbox"] == {"purpose": "user", "location": "onprem"}
    ),
    "Exchange plan suspended": lambda u: _plans(u, "Suspended") & MAILBOX_PLANS,
    "Exchange plan in warning": lambda u: _plans(u, "Warning") & MAILBOX_PLANS,
    "licence assignment error": lambda u: (
        any(s["state"] == "Error" and s["error"] == "CountViolation" for s in u["licenseAssignmentStates"])
        and not u["assignedPlans"]
    ),
    "licensed, mailbox not provisioned": lambda u: (
        any(p["service"] == "exchange" and p["provisioningStatus"] == "PendingInput" for p in u["provisionedPlans"])
        and u["mailbox"] is None
    ),
    "Exchange Foundation only": lambda u: _plans(u) & {EXCHANGE_S_FOUNDATION.id} and not _plans(u) & MAILBOX_PLANS,
    "group-licensed": lambda u: any(
        s["assignedByGroup"] for s in u["licenseAssignmentStates"] if s["state"] == "Active"
    ),
    "Exchange plan switched off": lambda u: any(lic["disabledPlans"] for lic in u["assignedLicenses"]),
    "created in the last two days": lambda u: (
        dt.datetime.fromisoformat(u["createdDateTime"]) > NOW - dt.timedelta(days=2)
    ),
}


@pytest.mark.parametrize("users", [40, 300])
def test_every_category_is_present(users):
    tenant = generate_tenant("contoso", users, seed=1, now=NOW)
    assert len(tenant["users"]) == users
    missing = [name for name, test in CATEGORIES.items() if not any(test(u) for u in tenant["users"])]
    assert not missing
    assert tenant["deleted_users"] and all(
        NOW - dt.timedelta(days=30) <= dt.datetime.fromisoformat(u["deletedDateTime"]) <= NOW
        for u in tenant["deleted_users"]
    )
    mailboxes = [u for u in tenant["users"] if u["mail"] and u["userType"] == "Member"]
    assert all(u["proxyAddresses"][0] == f"SMTP:{u['mail']}" for u in mailboxes)
    assert any(p.startswith("smtp:") for u in mailboxes for p in u["proxyAddresses"])


def test_realistic_proportions():
    users = generate_tenant("contoso", 1000, seed=2, now=NOW)["users"]
    share = sum(1 for u in users if CATEGORIES["licensed member with a cloud mailbox"](u)) / len(users)
    guests = sum(1 for u in users if u["userType"] == "Guest") / len(users)
    assert 0.55 <= share <= 0.8 and 0.03 <= guests <= 0.1


def test_scope_group_holds_most_mailbox_users_some_nested():
    tenant = generate_tenant("contoso", 200, seed=3, now=NOW)
    groups = {g["id"]: g for g in tenant["groups"]}
    scope = next(g for g in tenant["groups"] if g["displayName"] == SCOPE_GROUP_NAME)
    nested = [m for m in scope["members"] if m in groups]
    assert nested and scope["mail"]
    members = {m for m in scope["members"] if m not in groups} | {m for g in nested for m in groups[g]["members"]}
    cloud = [u["id"] for u in tenant["users"] if u["mailbox"] and u["mailbox"]["location"] == "cloud"]
    assert len(set(cloud) & members) / len(cloud) > 0.7


def _remediation_sp(tenant: dict) -> dict | None:
    return next((s for s in tenant["service_principals"] if s["appId"] == DEMO_REMEDIATION_APP_ID), None)


TEAMS_ROOMS_SKUS = {  # Microsoft_Teams_Rooms_Pro and _Basic (Microsoft's licensing table): no Exchange plan
    "4cde982a-ede4-4409-9ae6-b003453c8ea6",
    "6af4b3d6-14bb-4a2a-960c-6c902aad34f3",
}


def test_enabled_teams_rooms_accounts_from_two_rooms_up():
    tenant = generate_tenant("contoso", 300, seed=1, now=NOW)
    rooms = [u for u in tenant["users"] if u["mailbox"] == {"purpose": "room", "location": "cloud"}]
    teams_rooms = [u for u in rooms if u["accountEnabled"]]
    assert len(rooms) == 3 and len(teams_rooms) == 1
    for room in teams_rooms:
        assert {lic["skuId"] for lic in room["assignedLicenses"]} <= TEAMS_ROOMS_SKUS and room["assignedLicenses"]
        assert not _plans(room) & MAILBOX_PLANS and room["mail"]
    skus = {s["skuId"] for s in tenant["subscribed_skus"]}
    assert {lic["skuId"] for r in teams_rooms for lic in r["assignedLicenses"]} <= skus
    # With one room (about 40 users) the only room stays a disabled, unlicensed room mailbox.
    small = generate_tenant("contoso", 40, seed=1, now=NOW)
    assert not any(u["accountEnabled"] for u in small["users"] if (u["mailbox"] or {}).get("purpose") == "room")


def _granted(sp: dict) -> set[str]:
    names = {v: k for k, v in GRAPH_APP_ROLES.items()}
    return {names[a["appRoleId"]] for a in sp["appRoleAssignments"]}


def test_scenarios():
    home, fabrikam, northwind, tailspin = demo_tenants(100, seed=7, now=NOW)
    assert [t["name"] for t in (home, fabrikam, northwind, tailspin)] == [
        "contoso",
        "fabrikam",
        "northwind",
        "tailspin",
    ]
    assert [len(t["users"]) for t in (home, fabrikam, northwind, tailspin)] == [100, 25, 20, 10]
    for tenant in (home, fabrikam, northwind, tailspin):
        assert any(s["appId"] == GRAPH_APP_ID for s in tenant["service_principals"])
        client = tenant["clients"][0]
        assert client["secret"] and client["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")
        assert "Mail.Send" in client["roles"] and "MailboxSettings.Read" in client["roles"]

    sp = _remediation_sp(home)
    assert sp["accountEnabled"] and _granted(sp) == {"Mail.ReadWrite"}
    assert sp["oauth2PermissionGrants"][0]["scope"] == "Organization.Read.All"
    app = next(a for a in home["applications"] if a["appId"] == DEMO_REMEDIATION_APP_ID)
    assert app["signInAudience"] == "AzureADMyOrg"
    secret_end = dt.datetime.fromisoformat(app["passwordCredentials"][0]["endDateTime"])
    cert_end = dt.datetime.fromisoformat(app["keyCredentials"][0]["endDateTime"])
    assert secret_end - NOW == dt.timedelta(days=10) and cert_end < NOW
    assert "legacy-contoso.com" in demo_domains(home) and "contoso.com" in demo_domains(home)

    assert _remediation_sp(fabrikam) is None and fabrikam["usage_report"]["concealed"] is True
    disabled = _remediation_sp(northwind)
    # northwind's app holds Mail.ReadWrite through Exchange RBAC for Applications only (see demo_rbac_exports)
    assert disabled["accountEnabled"] is False and _granted(disabled) == {"Organization.Read.All"}
    assert [g["role"] for g in northwind["rbac"]] == ["Application Mail.ReadWrite"] * 2
    assert northwind["administrative_units"][0]["members"]
    assert disabled["appOwnerOrganizationId"] == home["tenant_id"]
    # tailspin: no Exchange Online organisation, and the app disabled by Microsoft (still accountEnabled).
    assert tailspin["exchange_online"] is False and all(t.get("exchange_online") is None for t in (home, northwind))
    blocked = _remediation_sp(tailspin)
    assert blocked["accountEnabled"] is True
    assert blocked["disabledByMicrosoftStatus"] == "DisabledDueToViolationOfServicesAgreement"
    assert all("disabledByMicrosoftStatus" not in (_remediation_sp(t) or {}) for t in (home, fabrikam, northwind))
    healthy = _remediation_sp(generate_tenant("tailspin", 40, seed=1, scenario="healthy", now=NOW))
    assert healthy["accountEnabled"] and _granted(healthy) == {"Mail.ReadWrite", "Organization.Read.All"}
    with pytest.raises(ValueError, match="unknown scenario"):
        generate_tenant("x", 40, seed=1, scenario="sideways")


def test_demo_access_policies_and_recipients():
    tenants = demo_tenants(80, seed=7, now=NOW)
    policies = demo_access_policies(tenants)
    restrict = next(p for p in policies if p["AccessRight"] == "RestrictAccess")
    scope = next(g for g in tenants[0]["groups"] if g["displayName"] == SCOPE_GROUP_NAME)
    # As Exchange shows it: ScopeIdentity is the object name with a timestamp, the object id is in ScopeIdentityRaw.
    assert restrict["AppId"] == DEMO_REMEDIATION_APP_ID and re.fullmatch(
        re.escape(scope["displayName"]) + r"\d{14}", restrict["ScopeIdentity"]
    )
    assert restrict["ScopeIdentityRaw"].endswith(";" + scope["id"]) and restrict["ScopeName"] == scope["displayName"]
    assert restrict["Identity"].startswith(tenants[0]["tenant_id"] + "\\") and restrict["IsValid"] is True
    assert any(p["AccessRight"] == "DenyAccess" for p in policies)

    recipients = demo_recipients(tenants)
    known = {
        a.lower()
        for t in tenants
        for u in t["users"]
        for a in [u["mail"] or ""] + [p.partition(":")[2] for p in u["proxyAddresses"]]
    }
    assert any(r != r.lower() and r.lower() in known for r in recipients), "mixed-case real addresses"
    assert any(r.startswith("smtp:") for r in recipients)
    assert any(r.lower() not in known and not r.startswith("smtp:") for r in recipients), "addresses nobody owns"


def test_load_tenant_round_trip(tmp_path):
    tenant = generate_tenant("contoso", 40, seed=4, now=NOW)
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(tenant))
    assert load_tenant(path) == tenant
    minimal = tmp_path / "minimal.json"
    minimal.write_text(json.dumps({"tenant_id": "t", "name": "tiny", "users": []}))
    assert load_tenant(minimal)["groups"] == []
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    with pytest.raises(ValueError, match="lacks tenant_id, name, users"):
        load_tenant(broken)


def test_config_toml_and_secrets(sim_factory, make_config, tmp_path, small_tenant):
    tenants = demo_tenants(40, seed=7)
    sim = sim_factory(tenants)
    parsed = tomllib.loads(sim.config_toml("out"))
    assert [t["name"] for t in parsed["tenants"]] == ["contoso", "fabrikam", "northwind", "tailspin"]
    first = parsed["tenants"][0]
    assert first["authority_host"] == sim.url == first["graph_endpoint"]
    assert sim.secrets_env()[first["client_secret_env"]] == tenants[0]["clients"][0]["secret"]
    assert parsed["remediation_app"] == {
        "app_id": DEMO_REMEDIATION_APP_ID,
        "home_tenant_id": tenants[0]["tenant_id"],
    }
    assert parsed["audit"]["ca_bundle"] == str(sim.ca_path)

    config = make_config(sim, tenants, tmp_path, fail_on="critical")
    assert config.audit.ca_bundle == sim.ca_path and config.audit.fail_on == "critical"
    assert config.tenants[0].authority_host == sim.url and config.remediation_app.home_tenant_id
    assert len(small_tenant["users"]) == 60 and small_tenant["scenario"] == "healthy"
