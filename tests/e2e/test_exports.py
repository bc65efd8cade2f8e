"""Exchange Online PowerShell exports as admins produce them, audited end to end through the simulator.

Shapes, with their sources:
- Get-ApplicationAccessPolicy: ScopeIdentity is Exchange's object name with a creation timestamp
  (MyRestrictedSecGroup20210509121159 in a public walkthrough of the cmdlet, "Power Automate
  Test20250209121934" in another), ScopeName the display name, ScopeIdentityRaw `<SID>;<object id>`;
  Microsoft's page (learn.microsoft.com/powershell/module/exchange/get-applicationaccesspolicy) shows the
  Identity `<tenant>\\<app id>:<SID>;<object id>`. Policies can scope a single mailbox
  (New-ApplicationAccessPolicy -PolicyScopeGroupId takes a mailbox too).
- RBAC for Applications (learn.microsoft.com/exchange/permissions-exo/application-rbac): New-ServicePrincipal,
  New-ManagementScope -RecipientRestrictionFilter, New-ManagementRoleAssignment -App -Role "Application
  Mail.ReadWrite" -CustomResourceScope | -RecipientAdministrativeUnitScope. Read back as
  Get-ManagementRoleAssignment (Role, RoleAssignee, RoleAssigneeType ServicePrincipal, CustomResourceScope;
  an administrative unit shows as RecipientWriteScope AdministrativeUnit with its id in
  CustomRecipientWriteScope, as Microsoft365DSC's EXOManagementRoleAssignment reads it) and Get-ManagementScope
  (RecipientFilter, as Microsoft365DSC's EXOManagementScope reads it).
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

from audit.config import load_config
from audit.runner import RunOptions, audit_tenant
from tests.e2e.tenant_builder import E3, ORG_READ_ALL, REMEDIATION_APP_ID, TenantBuilder, _id, as_built

SID = "S-1-5-21-3169798578-2053692951-2481737396-4642945"
SCOPE_FILTER = "((Department -eq 'Sales') -and (CustomAttribute1 -ne 'NoRemediation'))"


def _findings(result, check: str) -> dict[str, str]:
    return {f.user_id: f.evidence for f in result.findings if f.check_id == check}


def _not_evaluated(result) -> dict[str, str]:
    return {n.check_id: n.reason for n in result.not_evaluated}


# ---------------------------------------------------------------------------------------------------
# Application access policies


@pytest.fixture
def policy_tenant():
    b = TenantBuilder("contoso")
    b.remediation_app()
    ids = {nick: b.user(nick, license=E3) for nick in ("alice", "bob", "vip", "oscar")}
    group = b.group("etd-scope", [ids["alice"], ids["bob"], ids["vip"]])
    rows = [
        {
            "ScopeName": "etd-scope",
            "ScopeIdentity": "etd-scope20210509121159",  # Exchange's name: Graph has no such group name
            "Identity": f"{b.tenant_id}\\{REMEDIATION_APP_ID}:{SID};{group}",
            "AppId": REMEDIATION_APP_ID,
            "ScopeIdentityRaw": f"{SID};{group}",
            "Description": "Restrict this app to members of etd-scope",
            "AccessRight": "RestrictAccess",
            "ShardType": "All",
            "IsValid": True,
            "ObjectState": "Unchanged",
        },
        {  # a single mailbox as the scope: Exchange names it by its alias
            "ScopeName": "Vip",
            "ScopeIdentity": "vip",
            "Identity": f"{b.tenant_id}\\{REMEDIATION_APP_ID}:{SID}9;{ids['vip']}",
            "AppId": REMEDIATION_APP_ID,
            "ScopeIdentityRaw": f"{SID}9;{ids['vip']}",
            "Description": "Executive mailbox excluded",
            "AccessRight": "DenyAccess",
            "ShardType": "All",
            "IsValid": True,
            "ObjectState": "Unchanged",
        },
    ]
    return b, ids, rows


def _format_list(rows: list[dict]) -> str:
    blocks = ["\n".join(f"{k:<16} : {v}" for k, v in row.items()) for row in rows]
    return "\n\n\n" + "\n\n".join(blocks) + "\n\n"


@pytest.mark.parametrize(
    ("form", "encoding"),
    [("json", "utf-16"), ("json", "utf-8"), ("csv", "utf-8"), ("format-list", "utf-16")],
)
def test_real_access_policy_export(sim_factory, policy_tenant, tmp_path, make_config, form, encoding):
    b, ids, rows = policy_tenant
    sim = sim_factory([b.spec])
    config = make_config(sim, [b.spec], tmp_path, **as_built())
    path = tmp_path / "policies.export"
    if form == "json":
        content = json.dumps(rows, indent=2)
    elif form == "csv":
        lines = ["#TYPE Deserialized.Microsoft.Exchange.Data.Directory.Management.ApplicationAccessPolicy"]
        with (tmp_path / "x.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, list(rows[0]), quoting=csv.QUOTE_ALL)
            writer.writeheader()
            writer.writerows(rows)
        content = "\n".join(lines) + "\n" + (tmp_path / "x.csv").read_text()
    else:
        content = _format_list(rows)
    path.write_bytes(content.encode(encoding))
    config = replace(config, remediation_app=replace(config.remediation_app, access_policy_file=path))

    result = audit_tenant(config.tenants[0], config, RunOptions(), recipients=None)

    assert result.status == "ok", (result.error, _not_evaluated(result))
    assert "mailbox-outside-app-scope" not in _not_evaluated(result)
    found = _findings(result, "mailbox-outside-app-scope")
    assert set(found) == {ids["oscar"], ids["vip"]}
    assert "in none of the RestrictAccess scopes (etd-scope)" in found[ids["oscar"]]
    assert "in DenyAccess scope Vip" in found[ids["vip"]]


def test_scope_address_with_a_quote_is_quoted_for_filter(sim_factory, tmp_path, make_config):
    """An address may hold an apostrophe; inside a $filter string literal it is written twice (OData Version 4.01
    Part 2: URL Conventions, docs.oasis-open.org/odata/odata/v4.01/odata-v4.01-part2-url-conventions.html)."""
    b = TenantBuilder("contoso")
    b.remediation_app()
    inside, outside = b.user("alice", license=E3), b.user("bob", license=E3)
    b.group("o'brien-team", [inside])
    policy = [
        {
            "AppId": REMEDIATION_APP_ID,
            "ScopeName": "o'brien-team@contoso.example",
            "ScopeIdentity": "o'brien-team@contoso.example",
            "AccessRight": "RestrictAccess",
        }
    ]
    sim = sim_factory([b.spec])
    config = make_config(sim, [b.spec], tmp_path, **as_built(policy=policy))
    result = audit_tenant(config.tenants[0], config, RunOptions(), recipients=None)
    assert result.status == "ok", (result.error, _not_evaluated(result))
    assert set(_findings(result, "mailbox-outside-app-scope")) == {outside}


def test_scope_not_found_is_not_a_finding(sim_factory, policy_tenant, tmp_path, make_config):
    b, ids, rows = policy_tenant
    rows = [{**rows[0], "ScopeIdentityRaw": f"{SID};{_id('gone', 'x')}", "ScopeName": "no such group"}]
    sim = sim_factory([b.spec])
    config = make_config(sim, [b.spec], tmp_path, **as_built(policy=rows))
    result = audit_tenant(config.tenants[0], config, RunOptions(), recipients=None)
    assert not _findings(result, "mailbox-outside-app-scope")
    assert "was found in the directory neither by object id" in _not_evaluated(result)["mailbox-outside-app-scope"]


# ---------------------------------------------------------------------------------------------------
# RBAC for Applications


@pytest.fixture
def rbac_tenant():
    b = TenantBuilder("northwind")
    b.remediation_app(roles=(ORG_READ_ALL,))  # no Entra Mail.ReadWrite: Exchange RBAC grants it
    ids = {}
    for nick, department, attribute in (
        ("sally", "Sales", None),
        ("ned", "Sales", "NoRemediation"),
        ("lars", "Legal", None),
        ("room-1", None, None),
    ):
        ids[nick] = b.user(
            nick, license=E3 if nick != "room-1" else None, mailbox="room" if nick == "room-1" else "user"
        )
        b.spec["users"][-1].update(
            {
                "department": department,
                "onPremisesExtensionAttributes": {f"extensionAttribute{n}": None for n in range(1, 16)}
                | {"extensionAttribute1": attribute},
            }
        )
    b.spec["users"][-1]["accountEnabled"] = False
    unit = _id("unit-legal", "northwind")
    b.spec["administrative_units"] = [{"id": unit, "displayName": "Legal", "members": [ids["lars"]]}]
    return b, ids, unit


def _rbac_files(tmp_path: Path, b: TenantBuilder, grants: list[dict], scopes: list[dict], pointers=None):
    sp_id = _id("remediation-sp", b.name)
    rows = [
        {
            "Name": f"{g['Role']}-{i}",
            "Role": g["Role"],
            "RoleAssignee": g.get("RoleAssignee", sp_id),
            "RoleAssigneeName": g.get("RoleAssignee", sp_id),
            "RoleAssigneeType": "ServicePrincipal",
            "AssignmentMethod": "Direct",
            "Enabled": True,
            "CustomResourceScope": g.get("CustomResourceScope"),
            "RecipientWriteScope": g.get("RecipientWriteScope", "CustomRecipientScope"),
            "CustomRecipientWriteScope": g.get("CustomRecipientWriteScope"),
        }
        for i, g in enumerate(grants)
    ]
    files = {"role_assignments_file": tmp_path / "role-assignments.json"}
    files["role_assignments_file"].write_text(json.dumps(rows), encoding="utf-16")
    files["management_scopes_file"] = tmp_path / "management-scopes.csv"
    with files["management_scopes_file"].open("w", newline="") as fh:
        fh.write("#TYPE Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.ManagementScope\n")
        writer = csv.DictWriter(fh, ["Name", "RecipientFilter", "ScopeRestrictionType", "Exclusive"])
        writer.writeheader()
        writer.writerows({"ScopeRestrictionType": "RecipientScope", "Exclusive": "False", **s} for s in scopes)
    if pointers is not None:
        files["exchange_service_principals_file"] = tmp_path / "exchange-service-principals.json"
        files["exchange_service_principals_file"].write_text(json.dumps(pointers))
    return files


def _audit(sim_factory, b, tmp_path, make_config, files: dict, roles: list[str] | None = None):
    if roles is not None:
        b.spec["clients"][0]["roles"] = roles
    sim = sim_factory([b.spec])
    config = make_config(sim, [b.spec], tmp_path, **as_built())
    config = replace(config, remediation_app=replace(config.remediation_app, **files))
    return audit_tenant(config.tenants[0], config, RunOptions(), recipients=None)


def test_rbac_management_scope_counts_as_held_and_scopes_mailboxes(sim_factory, rbac_tenant, tmp_path, make_config):
    b, ids, _ = rbac_tenant
    files = _rbac_files(
        tmp_path,
        b,
        [{"Role": "Application Mail.ReadWrite", "CustomResourceScope": "Sales scope"}],
        [{"Name": "Sales scope", "RecipientFilter": SCOPE_FILTER}],
    )
    result = _audit(sim_factory, b, tmp_path, make_config, files)
    assert result.status == "ok", (result.error, _not_evaluated(result))
    assert not [f for f in result.findings if f.check_id == "app-missing-permission"]  # no false critical
    found = _findings(result, "mailbox-outside-app-scope")
    # ned opted out through CustomAttribute1, lars is in Legal; the disabled room mailbox is not in Sales either.
    assert set(found) == {ids["ned"], ids["lars"], ids["room-1"]}
    assert (
        "Exchange RBAC for Applications grant (Application Mail.ReadWrite scoped to management scope"
        in (found[ids["ned"]])
    )


def test_rbac_administrative_unit_scope(sim_factory, rbac_tenant, tmp_path, make_config):
    b, ids, unit = rbac_tenant
    files = _rbac_files(
        tmp_path,
        b,
        [
            {"Role": "Application Mail.ReadWrite", "CustomResourceScope": "Sales scope"},
            {
                "Role": "Application Mail.ReadWrite",
                "RecipientWriteScope": "AdministrativeUnit",
                "CustomRecipientWriteScope": unit,
            },
        ],
        [{"Name": "Sales scope", "RecipientFilter": SCOPE_FILTER}],
    )
    roles = [*b.spec["clients"][0]["roles"], "AdministrativeUnit.Read.All"]
    result = _audit(sim_factory, b, tmp_path, make_config, files, roles=roles)
    assert set(_findings(result, "mailbox-outside-app-scope")) == {ids["ned"], ids["room-1"]}  # lars: in the unit


def test_rbac_administrative_unit_without_permission_is_not_evaluated(sim_factory, rbac_tenant, tmp_path, make_config):
    b, _, unit = rbac_tenant
    grant = {"Role": "Application Mail.ReadWrite", "RecipientWriteScope": "AdministrativeUnit"}
    files = _rbac_files(tmp_path, b, [{**grant, "CustomRecipientWriteScope": unit}], [])
    result = _audit(sim_factory, b, tmp_path, make_config, files)
    assert not _findings(result, "mailbox-outside-app-scope")
    assert "AdministrativeUnit.Read.All" in _not_evaluated(result)["mailbox-outside-app-scope"]


def test_rbac_filter_on_a_property_graph_does_not_show(sim_factory, rbac_tenant, tmp_path, make_config):
    b, _, _ = rbac_tenant
    files = _rbac_files(
        tmp_path,
        b,
        [{"Role": "Application Mail.ReadWrite", "CustomResourceScope": "by db"}],
        [{"Name": "by db", "RecipientFilter": "Database -eq 'EURPR01DG123-db001'"}],
    )
    result = _audit(sim_factory, b, tmp_path, make_config, files)
    assert not _findings(result, "mailbox-outside-app-scope")
    assert "tests Database, which Graph does not show" in _not_evaluated(result)["mailbox-outside-app-scope"]
    assert not [f for f in result.findings if f.check_id == "app-missing-permission"]  # still held, scope unknown


def test_rbac_assignee_by_name_needs_the_service_principal_export(sim_factory, rbac_tenant, tmp_path, make_config):
    """RoleAssignee may show the Exchange pointer's name; only Get-ServicePrincipal ties it to this tenant."""
    b, ids, _ = rbac_tenant
    sp_id = _id("remediation-sp", b.name)
    grant = {"Role": "Application Mail.ReadWrite", "RoleAssignee": "Mail Threat Remediation"}
    pointer = {"DisplayName": "Mail Threat Remediation", "AppId": REMEDIATION_APP_ID, "ObjectId": sp_id}
    scopes = [{"Name": "all", "RecipientFilter": "RecipientTypeDetails -ne 'DiscoveryMailbox'"}]

    without = _rbac_files(tmp_path, b, [{**grant, "CustomResourceScope": "all"}], scopes)
    result = _audit(sim_factory, b, tmp_path, make_config, without)
    missing = [f.evidence for f in result.findings if f.check_id == "app-missing-permission"]
    assert len(missing) == 1 and "Mail.ReadWrite" in missing[0]  # not credited on a name alone

    with_pointer = _rbac_files(tmp_path, b, [{**grant, "CustomResourceScope": "all"}], scopes, pointers=[pointer])
    result = _audit(sim_factory, b, tmp_path, make_config, with_pointer)
    assert not [f for f in result.findings if f.check_id == "app-missing-permission"]
    assert not _findings(result, "mailbox-outside-app-scope")


def test_rbac_config_keys(tmp_path):
    files = {k: tmp_path / f"{k}.json" for k in ("ra", "ms", "sp")}
    for path in files.values():
        path.write_text("[]")
    (tmp_path / "c.toml").write_text(
        '[[tenants]]\nname = "a"\ntenant_id = "00000000-0000-0000-0000-000000000001"\n'
        'client_id = "00000000-0000-0000-0000-000000000002"\ncertificate_path = "ra.json"\n'
        'certificate_thumbprint = "3B1E8F2D9C4A7B6E5D0F1A2B3C4D5E6F7A8B9C0D"\n'
        f'[remediation_app]\napp_id = "{REMEDIATION_APP_ID}"\nrole_assignments_file = "ra.json"\n'
        'management_scopes_file = "ms.json"\nexchange_service_principals_file = "sp.json"\n'
    )
    app = load_config(tmp_path / "c.toml").remediation_app
    assert (app.role_assignments_file, app.management_scopes_file, app.exchange_service_principals_file) == (
        files["ra"],
        files["ms"],
        files["sp"],
    )


def test_demo_tenants_show_both_cases(sim_factory, tmp_path):
    """The demo writes real-shaped exports (UTF-16 access policies, RBAC exports); northwind's app holds
    Mail.ReadWrite only through RBAC for Applications (a management scope and an administrative unit)."""
    from audit.demo import demo_config
    from audit.runner import audit_tenants
    from audit.simulator import demo_tenants

    tenants = demo_tenants(users=200, seed=3)
    sim = sim_factory(tenants)
    config, _ = demo_config(sim, tmp_path, tmp_path / "reports")
    assert config.remediation_app.access_policy_file.read_bytes()[:2] == b"\xff\xfe"  # UTF-16 LE BOM
    result = audit_tenants(config, RunOptions())
    by_name = {t.name: t for t in result.tenants}
    for t in result.tenants:
        assert "mailbox-outside-app-scope" not in _not_evaluated(t), t.name

    northwind = next(t for t in tenants if t["name"] == "northwind")
    unit = set(northwind["administrative_units"][0]["members"])
    users = {u["id"]: u for u in northwind["users"]}
    flagged = _findings(by_name["northwind"], "mailbox-outside-app-scope")
    assert flagged
    for user_id in flagged:
        user = users[user_id]
        opted_out = (user.get("onPremisesExtensionAttributes") or {}).get("extensionAttribute1") == "NoRemediation"
        assert user_id not in unit and (user.get("department") == "Legal" or opted_out or not user.get("department"))
    assert unit and not unit & set(flagged)  # Legal mailboxes in the unit are reached
    assert not [f for f in by_name["northwind"].findings if f.check_id == "app-missing-permission"]

    contoso = _findings(by_name["contoso"], "mailbox-outside-app-scope")
    assert any("RestrictAccess scopes (ETD Remediation Scope)" in e for e in contoso.values())
    assert any("DenyAccess scope" in e for e in contoso.values())


def test_rbac_member_of_group_uses_direct_members(sim_factory, rbac_tenant, tmp_path, make_config):
    """MemberOfGroup filters on the memberOf back-link, given the group's distinguished name
    (exchangepedia.com, "memberOf Attribute can now be used in OPATH filters"): direct members only."""
    b, ids, _ = rbac_tenant
    nested = b.group("pilot-nested", [ids["ned"]])
    b.group("remediation-pilot", [ids["sally"], nested])
    dn = (
        "CN=remediation-pilot,OU=northwind.onmicrosoft.com,OU=Microsoft Exchange Hosted Organizations,"
        "DC=EURPR01A001,DC=prod,DC=outlook,DC=com"
    )
    files = _rbac_files(
        tmp_path,
        b,
        [{"Role": "Application Mail.ReadWrite", "CustomResourceScope": "pilot"}],
        [{"Name": "pilot", "RecipientFilter": f"MemberOfGroup -eq '{dn}'"}],
    )
    result = _audit(sim_factory, b, tmp_path, make_config, files)
    assert result.status == "ok", (result.error, _not_evaluated(result))
    assert set(_findings(result, "mailbox-outside-app-scope")) == {ids["ned"], ids["lars"], ids["room-1"]}
