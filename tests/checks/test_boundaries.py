"""Checks at their exact edges: a boundary that moves by one second, one hour or one tenant fails here.

Each case sits on the line itself (exactly now, exactly the window) and one step either side of it, so
that `<=` turned into `<`, 24 h turned into 48 h, or a case-sensitive prefix is caught.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from audit.checks import CheckContext, app_credential_expiring, mailbox_not_provisioned, recipient_not_in_directory
from audit.config import RemediationAppConfig
from audit.models import Dataset, Severity
from tests.checks.builders import (
    APP_ID,
    NO_MAILBOX,
    NOW,
    TENANT_ID,
    context,
    e3_user,
    run,
    snapshot,
    user,
)


def stamp(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- app-credential-expiring: expired means "ends at or before now" ----------------------------------


def credential_app(end) -> dict:
    secret = {"keyId": "edge0001-0000", "displayName": "edge", "endDateTime": stamp(end)}
    return {"id": "app-obj", "appId": APP_ID, "passwordCredentials": [secret], "keyCredentials": []}


def credential_findings(end, warning_days: int = 30):
    app = credential_app(end)
    return run(app_credential_expiring, snapshot(application=app), context(warning_days=warning_days))


def test_a_secret_ending_exactly_now_has_expired():
    [f] = credential_findings(NOW)
    assert f.severity == Severity.CRITICAL
    assert "expired 2025-12-01 (0 days ago)" in f.evidence
    assert "no credential is still valid" in f.evidence


def test_a_secret_ending_one_second_from_now_is_still_valid_but_expiring():
    [f] = credential_findings(NOW + timedelta(seconds=1))
    assert f.severity == Severity.MEDIUM
    assert "expires 2025-12-01 (1 days left)" in f.evidence
    assert "1 credential(s) valid today" in f.evidence


def test_a_secret_ending_exactly_at_the_warning_window_edge_is_expiring():
    [f] = credential_findings(NOW + timedelta(days=30), warning_days=30)
    assert f.severity == Severity.MEDIUM
    assert "expires 2025-12-31 (30 days left)" in f.evidence


def test_a_secret_ending_one_second_past_the_warning_window_is_not_reported():
    assert credential_findings(NOW + timedelta(days=30, seconds=1), warning_days=30) == []


def test_the_warning_window_follows_the_configured_days():
    end = NOW + timedelta(days=10)
    assert [f.severity for f in credential_findings(end, warning_days=10)] == [Severity.MEDIUM]
    assert credential_findings(end, warning_days=9) == []


def test_an_expired_secret_next_to_a_secret_ending_exactly_now_is_critical():
    """Both have lapsed, so nothing is valid today: the expired one is critical, not high."""
    app = credential_app(NOW - timedelta(days=3))
    app["passwordCredentials"].append({"keyId": "edge0002", "displayName": "now", "endDateTime": stamp(NOW)})
    findings = run(app_credential_expiring, snapshot(application=app), context())
    assert [f.severity for f in findings] == [Severity.CRITICAL, Severity.CRITICAL]
    assert "(3 days ago)" in findings[0].evidence


@pytest.fixture
def clock_not_on_utc(monkeypatch):
    """The machine's local time is UTC+05:30 (a POSIX zone, no time-zone database needed)."""
    monkeypatch.setenv("TZ", "XST-05:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_credential_end_times_are_read_in_utc_whatever_the_machines_time_zone(clock_not_on_utc):
    # Graph writes DateTimeOffset values in UTC with a trailing Z (the Edm.DateTimeOffset convention of its
    # resource pages, e.g. passwordCredential endDateTime); an explicit offset is honoured, and a time without
    # one is read as UTC, never as the machine's local time.
    def evidence(end: str) -> str:
        secret = {"keyId": "k1", "displayName": "s", "endDateTime": end}
        app = {"id": "app-obj", "appId": APP_ID, "passwordCredentials": [secret], "keyCredentials": []}
        [f] = run(app_credential_expiring, snapshot(application=app), context())
        return f.evidence

    assert evidence("2025-12-01T13:00:00+02:00").startswith("secret 's' (key k1) expired 2025-12-01")  # 11:00 UTC
    assert evidence("2025-12-01T13:00:00").startswith("secret 's' (key k1) expires 2025-12-01")  # 13:00 UTC
    assert evidence("2025-12-20T20:00:00Z").startswith("secret 's' (key k1) expires 2025-12-20")  # the 21st at +05:30


# --- mailbox-not-provisioned: the 24-hour provisioning window ----------------------------------------


def provisioning_severity(age: timedelta) -> tuple[Severity, str]:
    u = e3_user("new", created=stamp(NOW - age))
    [f] = run(mailbox_not_provisioned, snapshot([u], probes={"new": NO_MAILBOX}))
    return f.severity, f.evidence


@pytest.mark.parametrize(
    "age, severity",
    [
        (timedelta(hours=24) - timedelta(seconds=1), Severity.MEDIUM),
        (timedelta(hours=24), Severity.HIGH),
        (timedelta(hours=30), Severity.HIGH),
        (timedelta(hours=47), Severity.HIGH),
    ],
    ids=["one-second-inside", "exactly-24h", "30h", "47h"],
)
def test_the_provisioning_window_is_exactly_24_hours(age, severity):
    found, evidence = provisioning_severity(age)
    assert found == severity
    assert ("provisioning may still be running" in evidence) == (severity == Severity.MEDIUM)


def test_a_young_account_says_how_many_whole_hours_old_it_is():
    _, evidence = provisioning_severity(timedelta(hours=23, minutes=59))
    assert "account created 23 h ago" in evidence


def test_an_account_without_a_creation_time_is_high():
    u = e3_user("undated", created=None)
    [f] = run(mailbox_not_provisioned, snapshot([u], probes={"undated": NO_MAILBOX}))
    assert f.severity == Severity.HIGH


# --- recipient-not-in-directory: SMTP prefixes and the first tenant ----------------------------------


def test_a_primary_smtp_proxy_that_differs_from_mail_owns_its_address():
    """The upper-case `SMTP:` marks the primary address; it resolves the user as `smtp:` aliases do."""
    u = user(
        "p",
        upn="p.upn@contoso.com",
        mail="old.mail@contoso.com",
        proxy=["SMTP:Primary@Contoso.com", "smtp:alias@contoso.com", "Smtp:mixed@contoso.com"],
    )
    recipients = ["primary@contoso.com", "ALIAS@contoso.com", "mixed@contoso.com", "nobody@contoso.com"]
    findings = run(recipient_not_in_directory, snapshot([u], recipients=recipients))
    assert [f.user_principal_name for f in findings] == ["nobody@contoso.com"]


def test_a_non_smtp_proxy_does_not_own_an_address():
    u = user("s", mail=None, proxy=["SIP:voice@contoso.com", "X500:/o=org/cn=voice"])
    findings = run(recipient_not_in_directory, snapshot([u], recipients=["voice@contoso.com"]))
    assert [f.user_principal_name for f in findings] == ["voice@contoso.com"]


def run_context(*, first: bool, other_domains: frozenset[str] = frozenset()) -> CheckContext:
    return CheckContext(
        now=NOW,
        tenant_count=2,
        configured_tenant_ids=frozenset({TENANT_ID}),
        remediation_app=RemediationAppConfig(app_id=APP_ID),
        domains=(),
        other_domains=other_domains,
        first_tenant=first,
    )


def test_an_address_of_nobodys_domain_is_reported_only_in_the_first_tenant():
    snap = snapshot([user("a")], recipients=["stray@elsewhere.example"])
    [f] = run(recipient_not_in_directory, snap, run_context(first=True))
    assert f.user_principal_name == "stray@elsewhere.example"
    assert "elsewhere.example is not a verified domain of any configured tenant" in f.evidence
    assert run(recipient_not_in_directory, snap, run_context(first=False)) == []


def test_an_address_of_our_own_domain_is_reported_in_a_later_tenant_too():
    snap = snapshot([user("a")], recipients=["gone@contoso.com"])
    [f] = run(recipient_not_in_directory, snap, run_context(first=False))
    assert f.user_principal_name == "gone@contoso.com"
    assert "verified domain" not in f.evidence


def test_an_address_of_another_tenants_domain_is_left_to_that_tenant_even_in_the_first():
    snap = snapshot([user("a")], recipients=["someone@fabrikam.example"])
    assert (
        run(recipient_not_in_directory, snap, run_context(first=True, other_domains=frozenset({"fabrikam.example"})))
        == []
    )


def test_with_one_tenant_an_address_of_nobodys_domain_names_this_tenant():
    snap = snapshot([user("a")], recipients=["stray@elsewhere.example"])
    [f] = run(recipient_not_in_directory, snap, context())
    assert "elsewhere.example is not a verified domain of this tenant" in f.evidence


def test_credentials_are_named_by_display_name_key_identifier_or_key_alone():
    def expiring(cred: dict) -> str:
        app = {"id": "app-obj", "appId": APP_ID, "passwordCredentials": [cred], "keyCredentials": []}
        [f] = run(app_credential_expiring, snapshot(application=app), context())
        return f.evidence

    end = stamp(NOW + timedelta(days=2))
    assert expiring({"keyId": "k1234567-89", "displayName": "main", "endDateTime": end}).startswith(
        "secret 'main' (key k1234567) expires"
    )
    assert expiring({"keyId": "k2", "customKeyIdentifier": "Q0lE", "endDateTime": end}).startswith(
        "secret 'Q0lE' (key k2) expires"
    )
    assert expiring({"keyId": "k3", "endDateTime": end}).startswith("secret (key k3) expires")
    assert expiring({"endDateTime": end}).startswith("secret (key ) expires")


def test_the_evidence_counts_every_credential_still_valid():
    app = credential_app(NOW - timedelta(days=1))
    app["passwordCredentials"] += [
        {"keyId": "v1", "displayName": "a", "endDateTime": stamp(NOW + timedelta(days=90))},
        {"keyId": "v2", "displayName": "b", "endDateTime": stamp(NOW + timedelta(days=200))},
    ]
    [f] = run(app_credential_expiring, snapshot(application=app), context())
    assert f.evidence == "secret 'edge' (key edge0001) expired 2025-11-30 (1 days ago); 2 credential(s) valid today"
    [only] = credential_findings(NOW - timedelta(days=1))
    assert only.evidence == "secret 'edge' (key edge0001) expired 2025-11-30 (1 days ago); no credential is still valid"


# --- every user and every address is judged, not only the first ones ---------------------------------


def test_users_without_a_usable_plan_first_do_not_stop_the_provisioning_check():
    stuck = [("exchange", "Enabled", "PendingInput"), ("exchange", "Enabled", "Error")]
    users = [user("plain"), e3_user("lapsed", status="Deleted"), e3_user("fine"), e3_user("late", provisioned=stuck)]
    [f] = run(mailbox_not_provisioned, snapshot(users))
    assert f.user_id == "late"
    assert "Exchange provisioning status Error, PendingInput" in f.evidence


def test_every_missing_address_is_reported_after_a_repeat_or_another_tenants_one():
    recipients = ["gone@contoso.com", "GONE@contoso.com", "someone@fabrikam.example", "left@contoso.com"]
    ctx = run_context(first=True, other_domains=frozenset({"fabrikam.example"}))
    findings = run(recipient_not_in_directory, snapshot([user("a")], recipients=recipients), ctx)
    assert [f.user_principal_name for f in findings] == ["gone@contoso.com", "left@contoso.com"]
    assert all(f.evidence.startswith("no user owns ") for f in findings)


def test_a_configured_domain_counts_as_ours_whatever_its_case():
    snap = snapshot([user("a")], recipients=["x@fabrikam.example"])
    [f] = run(recipient_not_in_directory, snap, context(domains=("Fabrikam.Example",)))
    assert f.evidence.startswith("no user owns x@fabrikam.example as mail")
    assert "verified domain" not in f.evidence


def test_the_domain_is_what_follows_the_last_at_sign():
    [f] = run(recipient_not_in_directory, snapshot([user("a")], recipients=["odd@part@contoso.com"]))
    assert "verified domain" not in f.evidence


def test_evidence_keeps_its_first_words_when_it_adds_a_reason():
    stray = run(recipient_not_in_directory, snapshot([user("a")], recipients=["s@elsewhere.example"]))
    unread = run(
        recipient_not_in_directory,
        snapshot([user("a")], recipients=["r@contoso.com"], deleted=Dataset.missing("403 from Graph")),
    )
    former = user("f", upn="former@contoso.com", deleted=None)
    undated = run(
        recipient_not_in_directory, snapshot([user("a")], recipients=["former@contoso.com"], deleted=[former])
    )
    assert stray[0].evidence == (
        "no user owns s@elsewhere.example as mail, user principal name or proxy address; "
        "elsewhere.example is not a verified domain of this tenant"
    )
    assert unread[0].evidence.endswith("; soft-deleted users could not be checked: 403 from Graph")
    assert unread[0].evidence.startswith("no user owns r@contoso.com")
    assert undated[0].evidence == (
        "no user owns former@contoso.com as mail, user principal name or proxy address; "
        "it belongs only to the soft-deleted user former@contoso.com"
    )
    dated = user("f", upn="former@contoso.com", deleted="2025-11-20T10:00:00Z")
    [f] = run(recipient_not_in_directory, snapshot([user("a")], recipients=["former@contoso.com"], deleted=[dated]))
    assert f.evidence.endswith("soft-deleted user former@contoso.com (deleted 2025-11-20)")


def test_a_young_account_exactly_23_hours_old_says_23_hours_in_the_whole_evidence():
    _, evidence = provisioning_severity(timedelta(hours=23))
    assert evidence == (
        "holds EXCHANGE_S_ENTERPRISE (Enabled); but no mailbox exists: mailbox probe: no_mailbox "
        "(MailboxNotEnabledForRESTAPI); account created 23 h ago: provisioning may still be running"
    )
