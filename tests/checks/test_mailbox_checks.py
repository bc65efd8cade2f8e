"""no-exchange-license, exchange-license-suspended, mailbox-not-provisioned, on-premises-mailbox."""

from __future__ import annotations

import pytest

from audit.checks import (
    exchange_license_suspended,
    mailbox_not_provisioned,
    no_exchange_license,
    on_premises_mailbox,
    run_checks,
)
from audit.models import MAILBOX_INACTIVE, RESOURCE_NOT_FOUND, MailboxProbe, Severity
from tests.checks.builders import (
    EXO_P1,
    EXO_P2,
    FOUNDATION,
    MAILBOX,
    NO_MAILBOX,
    SKU_E3,
    SKU_EXO_P1,
    SKU_PBI_FREE,
    context,
    e3_user,
    run,
    snapshot,
    unlicensed,
    user,
)

SPE_E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"  # Microsoft 365 E3, also carries EXCHANGE_S_ENTERPRISE


def all_findings(snap):
    findings, _ = run_checks(snap, context())
    return findings


# --- no-exchange-license -----------------------------------------------------------------------------


def test_unlicensed_member_without_mailbox_is_flagged_with_all_fields():
    u = unlicensed("bob", display_name="Bob Example")
    findings = run(no_exchange_license, snapshot([u], probes={"bob": NO_MAILBOX}))
    assert len(findings) == 1
    f = findings[0]
    assert (f.check_id, f.severity, f.user_id, f.user_principal_name, f.display_name) == (
        "no-exchange-license",
        Severity.HIGH,
        "bob",
        "bob@contoso.com",
        "Bob Example",
    )
    assert f.predicted_error == f"{RESOURCE_NOT_FOUND} / {MAILBOX_INACTIVE}"
    assert f.cause == no_exchange_license.CHECK.cause and f.fix == no_exchange_license.CHECK.fix
    assert "no enabled Exchange Online plan that gives a mailbox" in f.evidence
    assert "no licences" in f.evidence
    assert "mailbox probe: no_mailbox (MailboxNotEnabledForRESTAPI)" in f.evidence


def test_exchange_foundation_only_is_flagged():
    u = user("pbi", licenses=[(SKU_PBI_FREE,)], plans=[(FOUNDATION, "Enabled")])
    [f] = run(no_exchange_license, snapshot([u], probes={"pbi": NO_MAILBOX}))
    assert "EXCHANGE_S_FOUNDATION (Enabled)" in f.evidence
    assert "POWER_BI_STANDARD" in f.evidence


def test_licensed_user_is_a_near_miss():
    assert run(no_exchange_license, snapshot([e3_user("ann")], probes={"ann": NO_MAILBOX})) == []


def test_directory_only_when_probes_are_off():
    [f] = run(no_exchange_license, snapshot([unlicensed("bob")]))
    assert "directory data only" in f.evidence


def test_unlicensed_user_whose_mailbox_the_probe_finds_is_not_flagged():
    assert run(no_exchange_license, snapshot([unlicensed("bob")], probes={"bob": MAILBOX})) == []


def test_group_licensed_user_counts_as_licensed():
    u = user(
        "grp",
        licenses=[(SKU_E3,)],
        plans=[(EXO_P2, "Enabled")],
        states=[(SKU_E3, "Active", None, "group-licensing-e3")],
        provisioned=[("exchange", "Enabled", "Success")],
    )
    assert all_findings(snapshot([u], probes={"grp": MAILBOX})) == []
    assert all_findings(snapshot([u])) == []  # directory data only


@pytest.mark.parametrize(
    "probe",
    [
        MailboxProbe("mailbox", purpose="shared"),
        MailboxProbe("mailbox", purpose="room"),
        MailboxProbe("mailbox", purpose="equipment"),
        MailboxProbe("mailbox", source="usage_report"),
    ],
)
@pytest.mark.parametrize("enabled", [True, False])
def test_unlicensed_shared_room_and_equipment_mailboxes_are_not_flagged(probe, enabled):
    u = unlicensed("res", enabled=enabled)
    assert all_findings(snapshot([u], probes={"res": probe})) == []


def test_shared_mailbox_with_a_lapsed_licence_is_not_flagged():
    u = e3_user("shared", status="Suspended")
    assert all_findings(snapshot([u], probes={"shared": MailboxProbe("mailbox", purpose="shared")})) == []


def test_disabled_accounts_are_not_flagged():
    licensed_disabled = e3_user("left", enabled=False)
    unlicensed_disabled = unlicensed("gone", enabled=False)
    snap = snapshot([licensed_disabled, unlicensed_disabled], probes={"left": MAILBOX, "gone": NO_MAILBOX})
    assert all_findings(snap) == []
    assert all_findings(snapshot([licensed_disabled, unlicensed_disabled])) == []


def test_guest_is_not_flagged():
    guest = unlicensed(
        "guest", upn="ext_fabrikam.com#EXT#@contoso.onmicrosoft.com", guest=True, mail="ext@fabrikam.com"
    )
    assert all_findings(snapshot([guest], probes={"guest": NO_MAILBOX})) == []
    assert all_findings(snapshot([guest])) == []


@pytest.mark.parametrize("outcome", ["access_denied", "failed"])
def test_users_whose_probe_was_refused_or_failed_are_not_assessed(outcome):
    probe = MailboxProbe(outcome, code="ErrorAccessDenied" if outcome == "access_denied" else "TooManyRequests")
    snap = snapshot(
        [unlicensed("x"), e3_user("y"), user("z", synced=True)], probes={"x": probe, "y": probe, "z": probe}
    )
    assert all_findings(snap) == []


def test_exchange_plan_switched_off_in_the_licence_counts_as_no_licence():
    u = user("off", licenses=[(SKU_E3, EXO_P2)], plans=[(EXO_P2, "Deleted")])
    snap = snapshot([u], probes={"off": NO_MAILBOX})
    [f] = run(no_exchange_license, snap)
    assert "switched off in the licence: EXCHANGE_S_ENTERPRISE in ENTERPRISEPACK" in f.evidence
    assert run(exchange_license_suspended, snap) == []


def test_every_plan_switched_off_is_named_with_the_licence_that_switches_it_off():
    licences = [(SKU_E3, EXO_P2), (SKU_EXO_P1, EXO_P1)]
    u = user("off", licenses=licences, plans=[(EXO_P2, "Deleted"), (EXO_P1, "Deleted")])
    [f] = run(no_exchange_license, snapshot([u], probes={"off": NO_MAILBOX}))
    assert (
        "switched off in the licence: EXCHANGE_S_STANDARD in EXCHANGESTANDARD, EXCHANGE_S_ENTERPRISE in ENTERPRISEPACK;"
        in f.evidence
    )


def test_plan_switched_off_in_one_licence_but_on_in_another_is_licensed():
    u = user("two", licenses=[(SKU_E3, EXO_P2), (SPE_E3,)], plans=[(EXO_P2, "Enabled")])
    assert all_findings(snapshot([u], probes={"two": MAILBOX})) == []


def test_suspended_mailbox_plan_is_left_to_the_suspension_check():
    u = e3_user("sus", status="Suspended")
    snap = snapshot([u], probes={"sus": NO_MAILBOX})
    assert run(no_exchange_license, snap) == []
    assert [f.check_id for f in all_findings(snap)] == ["exchange-license-suspended"]


# --- exchange-license-suspended ----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["Suspended", "LockedOut", "Deleted"])
def test_lapsed_mailbox_plan_is_high(status):
    [f] = run(exchange_license_suspended, snapshot([e3_user("sus", status=status)]))
    assert f.severity == Severity.HIGH
    assert f.predicted_error == MAILBOX_INACTIVE
    assert f"EXCHANGE_S_ENTERPRISE ({status}); no Enabled mailbox plan" in f.evidence
    assert "directory data only" in f.evidence


def test_grace_period_is_medium():
    [f] = run(exchange_license_suspended, snapshot([e3_user("grace", status="Warning")], probes={"grace": MAILBOX}))
    assert f.severity == Severity.MEDIUM
    assert "EXCHANGE_S_ENTERPRISE (Warning) (grace period)" in f.evidence


def test_lapsed_plan_next_to_an_enabled_mailbox_plan_is_a_near_miss():
    u = user("mix", licenses=[(SKU_E3,), (SKU_EXO_P1,)], plans=[(EXO_P2, "Suspended"), (EXO_P1, "Enabled")])
    assert run(exchange_license_suspended, snapshot([u])) == []


def test_licence_error_on_a_mailbox_sku_is_medium_with_the_error():
    u = user(
        "err",
        licenses=[(SKU_E3,)],
        plans=[(EXO_P2, "Enabled")],
        states=[(SKU_E3, "ActiveWithError", "CountViolation", "group-e3")],
    )
    [f] = run(exchange_license_suspended, snapshot([u], probes={"err": MAILBOX}))
    assert f.severity == Severity.MEDIUM
    assert "ENTERPRISEPACK (via group group-e3) in state ActiveWithError: CountViolation" in f.evidence


def test_licence_error_without_any_plan_reports_both_the_error_and_the_missing_licence():
    u = user("err", licenses=[(SKU_E3,)], states=[(SKU_E3, "Error", "CountViolation", None)])
    findings = all_findings(snapshot([u], probes={"err": NO_MAILBOX}))
    checks = by_check(findings)
    assert set(checks) == {"no-exchange-license", "exchange-license-suspended"}
    assert "licence ENTERPRISEPACK in state Error (CountViolation)" in checks["no-exchange-license"].evidence
    assert "assigned directly" in checks["exchange-license-suspended"].evidence


def test_licence_error_on_a_sku_without_mailbox_is_a_near_miss():
    u = user(
        "pbi",
        licenses=[(SKU_E3,), (SKU_PBI_FREE,)],
        plans=[(EXO_P2, "Enabled")],
        states=[(SKU_E3, "Active", None, None), (SKU_PBI_FREE, "Error", "CountViolation", None)],
    )
    assert run(exchange_license_suspended, snapshot([u])) == []


def by_check(findings):
    return {f.check_id: f for f in findings}


# --- mailbox-not-provisioned -------------------------------------------------------------------------


def test_licensed_user_without_mailbox_is_flagged():
    [f] = run(mailbox_not_provisioned, snapshot([e3_user("new")], probes={"new": NO_MAILBOX}))
    assert f.severity == Severity.HIGH and f.predicted_error == RESOURCE_NOT_FOUND
    assert "holds EXCHANGE_S_ENTERPRISE (Enabled)" in f.evidence
    assert "mailbox probe: no_mailbox (MailboxNotEnabledForRESTAPI)" in f.evidence


def test_pending_provisioning_without_probe_is_flagged_from_directory_data():
    u = e3_user("pend", provisioned=[("exchange", "Enabled", "PendingInput")])
    [f] = run(mailbox_not_provisioned, snapshot([u]))
    assert "Exchange provisioning status PendingInput" in f.evidence
    assert "directory data only" in f.evidence


def test_a_found_mailbox_is_skipped_and_the_users_after_it_still_checked():
    users = [e3_user("found"), e3_user("missing")]
    found = run(mailbox_not_provisioned, snapshot(users, probes={"found": MAILBOX, "missing": NO_MAILBOX}))
    assert [f.user_id for f in found] == ["missing"]


def test_only_licence_errors_on_skus_that_give_a_mailbox_are_reported_wherever_they_are_listed():
    u = user(
        "err",
        licenses=[(SKU_E3,), (SKU_PBI_FREE,), (SKU_EXO_P1,)],
        plans=[(EXO_P2, "Enabled")],
        states=[
            (SKU_E3, "Active", None, None),
            (SKU_PBI_FREE, "Error", "CountViolation", None),  # carries no mailbox plan: not this check's business
            (SKU_EXO_P1, "Error", "CountViolation", None),
        ],
    )
    [f] = run(exchange_license_suspended, snapshot([u], probes={"err": MAILBOX}))
    assert "licence EXCHANGESTANDARD (assigned directly) in state Error: CountViolation" in f.evidence
    assert "POWER_BI_STANDARD" not in f.evidence


def test_successful_provisioning_or_found_mailbox_is_a_near_miss():
    assert run(mailbox_not_provisioned, snapshot([e3_user("ok")])) == []
    assert run(mailbox_not_provisioned, snapshot([e3_user("ok")], probes={"ok": MAILBOX})) == []


def test_account_created_today_is_only_medium():
    u = e3_user("fresh", created="2025-12-01T09:30:00Z")
    [f] = run(mailbox_not_provisioned, snapshot([u], probes={"fresh": NO_MAILBOX}))
    assert f.severity == Severity.MEDIUM
    assert "created 2 h ago" in f.evidence


# --- on-premises-mailbox -----------------------------------------------------------------------------


def test_hybrid_user_with_on_premises_mailbox_is_flagged():
    u = e3_user("onprem", synced=True, proxy=["SMTP:onprem@contoso.com"])
    findings = all_findings(snapshot([u], probes={"onprem": NO_MAILBOX}))
    assert [f.check_id for f in findings] == ["on-premises-mailbox"]
    f = findings[0]
    assert f.predicted_error == MAILBOX_INACTIVE and f.severity == Severity.HIGH
    assert "synchronised from on-premises AD" in f.evidence
    assert "mail-enabled (onprem@contoso.com)" in f.evidence
    assert "mailbox probe: no_mailbox" in f.evidence


def test_unlicensed_hybrid_user_without_probe_is_flagged_on_directory_data():
    u = unlicensed("onprem", synced=True)
    findings = all_findings(snapshot([u]))
    assert [f.check_id for f in findings] == ["on-premises-mailbox"]
    assert "no Exchange Online mailbox plan" in findings[0].evidence
    assert "directory data only" in findings[0].evidence


def test_hybrid_user_with_cloud_mailbox_is_not_flagged():
    u = e3_user("cloud", synced=True)
    assert all_findings(snapshot([u], probes={"cloud": MAILBOX})) == []
    assert all_findings(snapshot([u])) == []  # licensed, no probe: the mailbox is meant to be in the cloud


def test_synced_user_without_mail_attributes_is_not_hybrid_mail_enabled():
    u = unlicensed("svc", synced=True, mail=None)
    snap = snapshot([u], probes={"svc": NO_MAILBOX})
    assert run(on_premises_mailbox, snap) == []
    assert [f.check_id for f in all_findings(snap)] == ["no-exchange-license"]


def test_disabled_hybrid_account_is_not_flagged():
    u = unlicensed("leaver", synced=True, enabled=False)
    assert run(on_premises_mailbox, snapshot([u], probes={"leaver": NO_MAILBOX})) == []
