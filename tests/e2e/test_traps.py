"""Issue traps, end to end: a hand-written tenant, one case per user, audited through the simulator."""

from __future__ import annotations

import pytest

from audit.runner import RunOptions, audit_tenant
from tests.e2e.tenant_builder import E3, EXO_P1, MAIL_READWRITE, PBI_FREE, REMEDIATION_APP_ID, TenantBuilder, as_built


@pytest.fixture
def trap_tenant():
    b = TenantBuilder("contoso")
    b.remediation_app(roles=(MAIL_READWRITE,), delegated="Organization.Read.All Mail.Read")
    ids = {
        "licensed": b.user("alice", license=E3, aliases=("alice.alias@contoso.example",)),
        "shared": b.user("shared-sales", mailbox="shared", enabled=False),
        "room": b.user("room-1", mailbox="room", enabled=False),
        "equipment": b.user("projector", mailbox="equipment", enabled=False),
        "group_licensed": b.user("grace", license=EXO_P1, by_group=True),
        "foundation_only": b.user("frank", license=PBI_FREE, mailbox=None),
        "disabled_licensed": b.user("dora", license=E3, enabled=False),
        "guest": b.user("gus", user_type="Guest", mailbox=None, mail=False),
        "hybrid_cloud": b.user("hank", license=E3, synced=True),
        "hybrid_onprem": b.user("olga", synced=True, mailbox="user", location="onprem"),
        "unlicensed": b.user("ursula", mailbox=None),
        "suspended": b.user("sam", license=E3, status="Suspended", mailbox=None),
        "warning": b.user("wendy", license=E3, status="Warning"),
        "not_provisioned": b.user("nina", license=E3, mailbox=None, provisioning="PendingInput"),
        "outside_scope": b.user("oscar", license=E3),
    }
    ids["deleted"] = b.deleted_user("dave", days_ago=5)
    in_scope = [v for k, v in ids.items() if k not in ("outside_scope", "deleted")]
    b.group("etd-scope", in_scope)
    policy = [
        {
            "Identity": f"{b.tenant_id}\\{REMEDIATION_APP_ID}:S-1-5-21-1",
            "AppId": REMEDIATION_APP_ID,
            "ScopeName": "etd-scope",
            "ScopeIdentity": "etd-scope@contoso.example",
            "AccessRight": "RestrictAccess",
            "Description": "limit remediation",
            "IsValid": True,
        }
    ]
    return b, ids, policy


def findings_by_user(result):
    out: dict[str | None, set[str]] = {}
    for f in result.findings:
        out.setdefault(f.user_id, set()).add(f.check_id)
    return out


def test_traps_end_to_end(sim_factory, trap_tenant, tmp_path, make_config):
    b, ids, policy = trap_tenant
    sim = sim_factory([b.spec])
    config = make_config(
        sim,
        [b.spec],
        tmp_path,
        **as_built(policy=policy, domains={"contoso": ("contoso.example", "legacy-contoso.example")}),
    )
    recipients = [
        "ALICE@CONTOSO.EXAMPLE",
        "smtp:Alice.Alias@contoso.example",
        "nobody@contoso.example",
        "SMTP:dave@contoso.example",
    ]
    result = audit_tenant(config.tenants[0], config, RunOptions(), recipients=recipients)
    assert result.status == "ok", result.error
    got = findings_by_user(result)

    for clean in (
        "licensed",
        "shared",
        "room",
        "equipment",
        "group_licensed",
        "disabled_licensed",
        "guest",
        "hybrid_cloud",
    ):
        assert ids[clean] not in got, (clean, got.get(ids[clean]))
    assert got[ids["foundation_only"]] == {"no-exchange-license"}
    assert got[ids["unlicensed"]] == {"no-exchange-license"}
    assert got[ids["hybrid_onprem"]] == {"on-premises-mailbox"}
    assert got[ids["suspended"]] == {"exchange-license-suspended"}
    assert got[ids["warning"]] == {"exchange-license-suspended"}
    assert got[ids["not_provisioned"]] == {"mailbox-not-provisioned"}
    assert got[ids["outside_scope"]] == {"mailbox-outside-app-scope"}
    assert got[ids["deleted"]] == {"soft-deleted-user"}

    severities = {f.user_id: f.severity for f in result.findings if f.check_id == "exchange-license-suspended"}
    assert severities[ids["warning"]].rank < severities[ids["suspended"]].rank

    tenant_level = [f for f in result.findings if f.user_id is None]
    checks = sorted(f.check_id for f in tenant_level)
    # Organization.Read.All is only a delegated grant: it does not count. Mail.ReadWrite is there.
    missing = [f for f in tenant_level if f.check_id == "app-missing-permission"]
    assert len(missing) == 1 and "Organization.Read.All" in missing[0].evidence
    assert "domain-not-verified" in checks
    assert [f for f in tenant_level if f.check_id == "domain-not-verified"][0].evidence.count("legacy-contoso") == 1
    unknown = [f for f in result.findings if f.check_id == "recipient-not-in-directory"]
    assert len(unknown) == 2  # nobody@ and the soft-deleted dave@; alice in any case or alias form is known
    assert any("nobody@contoso.example" in f.evidence.lower() for f in unknown)
    assert any("soft-deleted" in f.evidence.lower() for f in unknown)
    # Every member's mailbox was settled once, by the usage report or a probe; guests not at all.
    members = {u["id"] for u in b.spec["users"] if u["userType"] == "Member"}
    assert set(result.snapshot.probes.value) == members
    assert 0 < result.mailboxes_probed < len(members)


def test_healthy_tenant_has_no_app_findings(sim_factory, tmp_path, make_config):
    b = TenantBuilder("fabrikam").remediation_app()
    b.user("amy", license=E3)
    sim = sim_factory([b.spec])
    config = make_config(sim, [b.spec], tmp_path, **as_built(domains={"fabrikam": ("fabrikam.example",)}))
    result = audit_tenant(config.tenants[0], config, RunOptions(), recipients=None)
    assert result.status == "ok"
    assert result.findings == []
    not_evaluated = {n.check_id for n in result.not_evaluated}
    # Without a policy export, a recipients list or the app's home tenant these cannot be decided.
    assert {"mailbox-outside-app-scope", "recipient-not-in-directory", "app-credential-expiring"} <= not_evaluated


def test_app_checks_across_tenants(sim_factory, tmp_path, make_config):
    home = TenantBuilder("vendor").remediation_app(audience="AzureADMyOrg").application(secret_days=10, cert_days=-3)
    home.user("ann", license=E3)
    absent = TenantBuilder("tailspin")
    absent.user("tom", license=E3)
    disabled = TenantBuilder("woodgrove").remediation_app(enabled=False)
    disabled.user("wes", license=E3)
    sim = sim_factory([home.spec, absent.spec, disabled.spec])
    config = make_config(sim, [home.spec, absent.spec, disabled.spec], tmp_path, **as_built(home=home.tenant_id))
    by_tenant = {t.name: audit_tenant(t, config, RunOptions(), recipients=None) for t in config.tenants}
    checks = {name: sorted(f.check_id for f in r.findings) for name, r in by_tenant.items()}
    assert "app-single-tenant" in checks["vendor"]
    assert checks["vendor"].count("app-credential-expiring") == 2
    assert checks["tailspin"] == ["app-not-consented"]
    assert "app-disabled" in checks["woodgrove"]
    assert "app-missing-permission" not in checks["woodgrove"]


def test_audit_without_mailbox_permission_reports_not_assessed(sim_factory, tmp_path, make_config):
    b = TenantBuilder("adatum").remediation_app()
    b.user("abe", license=E3)
    b.user("ulf", mailbox=None)
    b.spec["clients"][0]["roles"] = ["User.Read.All", "Organization.Read.All", "Application.Read.All"]
    sim = sim_factory([b.spec])
    config = make_config(sim, [b.spec], tmp_path, **as_built())
    result = audit_tenant(config.tenants[0], config, RunOptions(), recipients=None)
    # The audit's own missing permission is never reported as a mailbox problem.
    assert not any(f.user_id == b.spec["users"][0]["id"] for f in result.findings)
    assert sum(result.not_assessed.values()) == 2
    assert any("MailboxSettings.Read" in reason for reason in result.not_assessed)
