"""tenant_readiness() and render(): which item is PASS, WARN or FAIL, and when a tenant is ready.

A tenant finding at high severity or worse blocks remediation today (FAIL, not ready); a medium or low one
is a warning. Mailbox findings are per-user warnings: the tenant can still remediate the others.
"""

from __future__ import annotations

import json

import pytest

from audit.models import Finding, NotEvaluated, Severity, TenantResult, TenantStatus
from audit.readiness import Readiness, TenantReadiness, check_readiness, render, tenant_readiness
from audit.runner import ExitCode
from audit.simulator import generate_tenant
from tests.checks.builders import TENANT_ID, snapshot, user

ALL_ROLES = ("User.Read.All", "Organization.Read.All", "Application.Read.All", "MailboxSettings.Read")
OPTIONAL = ("Reports.Read.All", "GroupMember.Read.All")


def finding(check_id: str, severity: Severity, evidence: str = "evidence", user_id: str | None = None) -> Finding:
    return Finding(
        tenant_id=TENANT_ID,
        check_id=check_id,
        severity=severity,
        user_principal_name=f"{user_id}@contoso.com" if user_id else None,
        user_id=user_id,
        display_name=None,
        predicted_error="Remediation Failed - Unknown Reason",
        cause="cause",
        fix="fix",
        evidence=evidence,
    )


def result(*findings: Finding, roles=ALL_ROLES + OPTIONAL, **changes) -> TenantResult:
    snap = snapshot([user("u1"), user("u2")], recipients=["a@contoso.com", "b@contoso.com", "c@contoso.com"])
    snap = snap.__class__(**{**snap.__dict__, "audit_roles": tuple(roles)})
    fields = {"users_scanned": 4, "findings": list(findings), "snapshot": snap, **changes}
    return TenantResult("contoso", TENANT_ID, TenantStatus.OK, **fields)


def items(readiness: TenantReadiness) -> dict[str, tuple[str, str]]:
    return {i.item: (i.status, i.detail) for i in readiness.items}


CREDENTIALS = "remediation app credentials valid"


@pytest.mark.parametrize(
    "severity, status, ready",
    [
        (Severity.CRITICAL, "FAIL", False),
        (Severity.HIGH, "FAIL", False),
        (Severity.MEDIUM, "WARN", True),
        (Severity.LOW, "WARN", True),
    ],
)
def test_a_tenant_finding_fails_readiness_from_high_severity_up(severity, status, ready):
    readiness = tenant_readiness(result(finding("app-credential-expiring", severity, "secret 'a' expires")))
    assert items(readiness)[CREDENTIALS] == (status, "secret 'a' expires")
    assert readiness.ready is ready


def test_the_worst_of_several_findings_decides_and_all_evidence_is_shown():
    found = [
        finding("domain-not-verified", Severity.MEDIUM, "one"),
        finding("domain-not-verified", Severity.HIGH, "two"),
    ]
    readiness = tenant_readiness(result(*found))
    assert items(readiness)["configured domains verified"] == ("FAIL", "one; two")
    assert not readiness.ready


def test_a_clean_tenant_with_every_role_is_ready_and_lists_its_roles():
    readiness = tenant_readiness(result())
    got = items(readiness)
    assert readiness.ready and (readiness.name, readiness.tenant_id) == ("contoso", TENANT_ID)
    assert got["authentication"] == ("PASS", "token issued")
    assert got["audit app permissions"] == ("PASS", ", ".join(sorted(ALL_ROLES + OPTIONAL)))
    assert got[CREDENTIALS] == ("PASS", "")
    assert got["mailboxes: no-exchange-license"] == ("PASS", "none would fail")
    assert {s for s, _ in got.values()} == {"PASS"}


def test_a_failed_tenant_is_one_fail_item():
    failed = TenantResult("contoso", TENANT_ID, TenantStatus.FAILED, error="AADSTS7000215: bad secret")
    readiness = tenant_readiness(failed)
    assert (readiness.name, readiness.tenant_id, readiness.ready) == ("contoso", TENANT_ID, False)
    assert items(readiness) == {"authentication and directory access": ("FAIL", "AADSTS7000215: bad secret")}
    no_reason = tenant_readiness(TenantResult("contoso", TENANT_ID, TenantStatus.PARTIAL))
    assert items(no_reason) == {"authentication and directory access": ("FAIL", "failed")}


@pytest.mark.parametrize("role", ALL_ROLES)
def test_a_missing_required_role_fails(role):
    readiness = tenant_readiness(result(roles=[r for r in ALL_ROLES + OPTIONAL if r != role]))
    status, detail = items(readiness)[f"audit app holds {role}"]
    assert status == "FAIL" and detail.startswith("missing: grant it to ")
    assert not readiness.ready and "audit app permissions" not in items(readiness)


@pytest.mark.parametrize("role", OPTIONAL)
def test_a_missing_optional_role_only_warns(role):
    readiness = tenant_readiness(result(roles=[r for r in ALL_ROLES + OPTIONAL if r != role]))
    assert items(readiness)[f"audit app holds {role}"][0] == "WARN"
    assert readiness.ready


def test_directory_read_all_covers_the_directory_roles_but_not_mailbox_settings():
    readiness = tenant_readiness(result(roles=["Directory.Read.All", "Reports.Read.All"]))
    got = items(readiness)
    assert [k for k in got if k.startswith("audit app holds")] == ["audit app holds MailboxSettings.Read"]
    covered = tenant_readiness(result(roles=["Directory.Read.All", "Reports.Read.All", "MailboxSettings.ReadWrite"]))
    assert covered.ready and items(covered)["audit app permissions"][0] == "PASS"


def test_an_unconsented_app_fails_the_items_that_need_consent():
    readiness = tenant_readiness(result(finding("app-not-consented", Severity.CRITICAL, "no service principal")))
    got = items(readiness)
    assert got["remediation app consented in this tenant"] == ("FAIL", "no service principal")
    assert got["remediation app enabled"] == ("FAIL", "no: the app is not consented in this tenant")
    assert got["remediation app holds Mail.ReadWrite and Organization.Read.All"][0] == "FAIL"
    # Every check the catalogue marks as needing consent says so in one way, single-tenant included.
    assert got["remediation app accepts this many tenants"] == ("FAIL", "no: the app is not consented in this tenant")


def test_a_check_not_evaluated_is_a_warning_never_a_pass():
    skipped = [
        NotEvaluated("app-credential-expiring", "lives in another tenant"),
        NotEvaluated("soft-deleted-user", "x"),
    ]
    readiness = tenant_readiness(result(not_evaluated=skipped))
    got = items(readiness)
    assert got[CREDENTIALS] == ("WARN", "not evaluated: lives in another tenant")
    assert got["mailboxes: soft-deleted-user"] == ("WARN", "not evaluated: x")
    assert readiness.ready


def test_mailbox_findings_warn_with_their_share_of_what_was_counted():
    found = [
        finding("no-exchange-license", Severity.HIGH, user_id="u1"),
        finding("recipient-not-in-directory", Severity.MEDIUM),
        finding("soft-deleted-user", Severity.HIGH, user_id="d1"),
    ]
    readiness = tenant_readiness(result(*found, not_assessed={"probe refused": 2}))
    got = items(readiness)
    assert got["mailboxes: no-exchange-license"] == ("WARN", "1 would fail (25.0% of 4 users read)")
    assert got["mailboxes: recipient-not-in-directory"] == ("WARN", "1 would fail (33.3% of 3 addresses listed)")
    assert got["mailboxes: soft-deleted-user"] == ("WARN", "1 would fail")  # no soft-deleted users were read
    assert got["mailboxes not assessed"] == ("WARN", "2: probe refused")
    assert readiness.ready


def test_exit_code_ready_not_ready_and_could_not_check():
    ready = TenantReadiness("a", "1", True)
    not_ready = TenantReadiness("b", "2", False)
    assert Readiness([ready]).exit_code == ExitCode.OK
    assert Readiness([ready, not_ready]).exit_code == ExitCode.FINDINGS
    assert Readiness([ready], could_not_check=True).exit_code == ExitCode.USAGE


def test_render_aligns_items_and_says_ready_or_not():
    report = Readiness([tenant_readiness(result(finding("app-disabled", Severity.HIGH, "disabled")))])
    text = render(report)
    lines = text.splitlines()
    assert lines[0] == f"contoso ({TENANT_ID}): NOT READY"
    assert "  FAIL  remediation app enabled" in text and text.endswith("none would fail")
    columns = {line.index("none would fail") for line in lines if line.endswith("none would fail")}
    assert len(columns) == 1 and columns.pop() == 8 + max(len(i.item) for i in report.tenants[0].items) + 2
    as_json = json.loads(render(report, as_json=True))
    assert as_json["ready"] is False
    assert as_json["tenants"][0]["items"][0] == {"status": "PASS", "item": "authentication", "detail": "token issued"}


def test_a_share_is_given_even_of_a_single_user():
    one = result(finding("no-exchange-license", Severity.HIGH, user_id="u1"), users_scanned=1)
    assert items(tenant_readiness(one))["mailboxes: no-exchange-license"] == (
        "WARN",
        "1 would fail (100.0% of 1 users read)",
    )


def test_render_says_ready_and_indents_its_json():
    report = Readiness([tenant_readiness(result())])
    assert render(report).splitlines()[0] == f"contoso ({TENANT_ID}): READY"
    text = render(report, as_json=True)
    assert text.startswith('{\n  "ready": true,\n  "tenants": [\n    {\n      "name": "contoso",')


def test_check_readiness_audits_only_the_tenant_asked_for(sim_factory, make_config, tmp_path):
    first, second = generate_tenant("first", 6, seed=1), generate_tenant("second", 6, seed=2)
    sim = sim_factory([first, second])
    config = make_config(sim, [first, second], tmp_path)
    assert [t.name for t in check_readiness(config, "second").tenants] == ["second"]
    assert [t.name for t in check_readiness(config).tenants] == ["first", "second"]


def test_a_share_of_several_is_their_count_out_of_the_total():
    two = [finding("no-exchange-license", Severity.HIGH, user_id=u) for u in ("u1", "u2")]
    assert items(tenant_readiness(result(*two)))["mailboxes: no-exchange-license"] == (
        "WARN",
        "2 would fail (50.0% of 4 users read)",
    )


def test_soft_deleted_findings_are_counted_among_the_soft_deleted_users_read():
    snap = snapshot([user("u1")], deleted=[user("d1"), user("d2"), user("d3"), user("d4")])
    snap = snap.__class__(**{**snap.__dict__, "audit_roles": ALL_ROLES + OPTIONAL})
    found = TenantResult(
        "contoso",
        TENANT_ID,
        TenantStatus.OK,
        users_scanned=1,
        findings=[finding("soft-deleted-user", Severity.HIGH, user_id="d1")],
        snapshot=snap,
    )
    assert items(tenant_readiness(found))["mailboxes: soft-deleted-user"] == (
        "WARN",
        "1 would fail (25.0% of 4 soft-deleted users)",
    )


def test_check_readiness_could_not_check_only_when_a_tenant_failed(sim_factory, make_config, tmp_path, monkeypatch):
    first, second = generate_tenant("first", 6, seed=1), generate_tenant("second", 6, seed=2)
    sim = sim_factory([first, second])
    config = make_config(sim, [first, second], tmp_path)
    assert check_readiness(config).could_not_check is False
    monkeypatch.setenv(config.tenants[1].client_secret_env, "not-the-secret")
    readiness = check_readiness(config)
    assert readiness.could_not_check is True and readiness.exit_code == ExitCode.USAGE
    assert [t.ready for t in readiness.tenants] == [readiness.tenants[0].ready, False]
