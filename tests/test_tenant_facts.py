"""Tenant-level facts a real tenant can hold, end to end over the simulator: no Exchange Online
organisation, the remediation app disabled by Microsoft, and how readiness reports both."""

from __future__ import annotations

from dataclasses import replace

from audit.models import Finding, Severity, TenantResult, TenantStatus
from audit.readiness import tenant_readiness
from audit.report.tables import TENANT_COLUMNS, tenant_row
from audit.runner import RunOptions, audit_tenant
from audit.simulator import DEMO_REMEDIATION_APP_ID, generate_tenant
from tests.checks.builders import snapshot
from tests.simulator._support import Graph


def _no_exchange_tenant() -> dict:
    spec = generate_tenant("tailspin", 40, seed=3, scenario="healthy")
    spec["exchange_online"] = False
    return spec


def test_simulator_answers_like_a_tenant_without_exchange_online(sim_factory):
    # The error as Graph returns it (MicrosoftDocs/azure-docs#32957; a 401 on mail calls, O365/python-o365#757).
    spec = _no_exchange_tenant()
    sim = sim_factory([spec])
    user = next(u for u in spec["users"] if u["mailbox"])
    answer = Graph(sim, spec).get(f"/users/{user['id']}/mailboxSettings")
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["code"] == "OrganizationFromTenantGuidNotFound"
    assert error["message"] == f"The tenant for tenant guid '{spec['tenant_id']}' does not exist."
    assert {"request-id", "date"} <= set(error["innerError"])


def test_tenant_without_exchange_online_is_a_critical_finding_not_a_permission(sim_factory, make_config, tmp_path):
    spec = _no_exchange_tenant()
    sim = sim_factory([spec])
    config = make_config(sim, [spec], tmp_path)
    for probe in ("auto", "all"):
        result = audit_tenant(config.tenants[0], config, RunOptions(probe=probe), recipients=None)
        assert result.status == TenantStatus.OK, result.error  # read completely: the tenant really is so
        [finding] = [f for f in result.findings if f.check_id == "tenant-no-exchange-online"]
        assert finding.severity == Severity.CRITICAL and finding.user_id is None
        reasons = " ".join([n.reason for n in result.not_evaluated] + [result.snapshot.probes.error or ""])
        assert "MailboxSettings.Read" not in reasons  # the old advice, which no grant could satisfy
        assert "no organisation for this tenant" in result.snapshot.probes.error

        readiness = tenant_readiness(result)
        items = {i.item: i for i in readiness.items}
        assert items["Exchange Online serves this tenant"].status == "FAIL"
        assert "OrganizationFromTenantGuidNotFound" in items["Exchange Online serves this tenant"].detail
        assert readiness.ready is False


def test_tenant_with_exchange_online_passes_that_readiness_item(sim_factory, make_config, tmp_path):
    spec = generate_tenant("litware", 40, seed=3, scenario="healthy")
    sim = sim_factory([spec])
    config = make_config(sim, [spec], tmp_path)
    result = audit_tenant(config.tenants[0], config, RunOptions(probe="auto"), recipients=None)
    assert result.snapshot.exchange_online.value is True
    assert "tenant-no-exchange-online" not in {f.check_id for f in result.findings}
    items = {i.item: i.status for i in tenant_readiness(result).items}
    assert items["Exchange Online serves this tenant"] == "PASS"
    none = audit_tenant(config.tenants[0], config, RunOptions(probe="none"), recipients=None)
    assert {n.check_id for n in none.not_evaluated} >= {"tenant-no-exchange-online"}  # not asked: not passed


def test_app_disabled_by_microsoft_is_read_from_graph_and_flagged(sim_factory, make_config, tmp_path):
    # disabledByMicrosoftStatus on the service principal: null, NotDisabled, or
    # DisabledDueToViolationOfServicesAgreement (Graph v1.0 application/servicePrincipal resources).
    spec = generate_tenant("wingtip", 40, seed=3, scenario="blocked")
    sim = sim_factory([spec])
    config = make_config(sim, [spec], tmp_path)
    result = audit_tenant(config.tenants[0], config, RunOptions(probe="none"), recipients=None)
    sp = result.snapshot.remediation_sp.value
    assert sp["appId"] == DEMO_REMEDIATION_APP_ID and sp["accountEnabled"] is True
    assert sp["disabledByMicrosoftStatus"] == "DisabledDueToViolationOfServicesAgreement"
    [finding] = [f for f in result.findings if f.check_id == "app-disabled"]
    assert "has disabledByMicrosoftStatus DisabledDueToViolationOfServicesAgreement" in finding.evidence
    assert "accountEnabled false" not in finding.evidence
    items = {i.item: i.status for i in tenant_readiness(result).items}
    assert items["remediation app enabled"] == "FAIL"
    row = dict(zip([c.header for c in TENANT_COLUMNS], tenant_row(result), strict=True))
    assert row["App enabled"] == "no: disabled by Microsoft (DisabledDueToViolationOfServicesAgreement)"


def _user_finding(check_id: str, n: int) -> Finding:
    return Finding("t", check_id, Severity.HIGH, f"u{n}@x.example", f"u{n}", None, "e", "c", "f", "evidence")


def test_readiness_counts_findings_among_the_users_they_are_about():
    """40 unlicensed of 50 users read, of which only 14 mailboxes needed a probe (the rest settled from
    the usage report): the share is 80% of the users, never 40/14 = 285.7%."""
    snap = snapshot(deleted=["d1", "d2", "d3", "d4"], recipients=["a@x", "b@x"])
    findings = (
        [_user_finding("no-exchange-license", n) for n in range(40)]
        + [_user_finding("soft-deleted-user", n) for n in range(3)]
        + [_user_finding("recipient-not-in-directory", n) for n in range(2)]
    )
    result = TenantResult(
        "contoso", "t", TenantStatus.OK, users_scanned=50, mailboxes_probed=14, findings=findings, snapshot=snap
    )
    details = {i.item: i.detail for i in tenant_readiness(result).items}
    assert details["mailboxes: no-exchange-license"] == "40 would fail (80.0% of 50 users read)"
    assert details["mailboxes: soft-deleted-user"] == "3 would fail (75.0% of 4 soft-deleted users)"
    assert details["mailboxes: recipient-not-in-directory"] == "2 would fail (100.0% of 2 addresses listed)"
    empty = replace(result, users_scanned=0)
    assert {i.item: i.detail for i in tenant_readiness(empty).items}["mailboxes: no-exchange-license"] == (
        "40 would fail"
    )


def test_triage_names_the_missing_exchange_organisation_for_every_row(sim_factory, make_config, tmp_path):
    from audit.triage import triage

    spec = _no_exchange_tenant()
    sim = sim_factory([spec])
    config = make_config(sim, [spec], tmp_path)
    mailbox = next(u for u in spec["users"] if u["mailbox"] and u["accountEnabled"])["mail"]
    log = tmp_path / "errors.csv"
    log.write_text(
        f"Mailbox,Remediation Error\n{mailbox},Resource is Not Found\n{mailbox},Remediation Failed - Unknown Reason\n"
    )
    result = triage(config, log, out_dir=tmp_path / "out", formats=("json",))
    assert [r.diagnosis.check_id for r in result.rows] == ["tenant-no-exchange-online"] * 2
    assert all("OrganizationFromTenantGuidNotFound" in r.diagnosis.evidence for r in result.rows)


def test_app_registration_with_is_disabled_is_read_in_its_home_tenant(sim_factory, make_config, tmp_path):
    # isDisabled is a v1.0 property of application (Graph's v1.0 metadata, msgraph-metadata v1.0-Prod.csdl).
    spec = generate_tenant("contoso", 40, seed=3, scenario="home")
    app = next(a for a in spec["applications"] if a["appId"] == DEMO_REMEDIATION_APP_ID)
    app["isDisabled"] = True
    sim = sim_factory([spec])
    config = make_config(sim, [spec], tmp_path)
    result = audit_tenant(config.tenants[0], config, RunOptions(probe="none"), recipients=None)
    assert result.snapshot.application.value["isDisabled"] is True
    [finding] = [f for f in result.findings if f.check_id == "app-disabled"]
    assert finding.evidence == (
        f"app registration {app['displayName']} ({app['id']}, appId {DEMO_REMEDIATION_APP_ID}) has isDisabled true"
    )
