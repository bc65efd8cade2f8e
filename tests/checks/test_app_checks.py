"""app-not-consented, app-disabled, app-missing-permission, app-single-tenant, app-credential-expiring."""

from __future__ import annotations

import pytest

from audit.checks import (
    app_credential_expiring,
    app_disabled,
    app_missing_permission,
    app_not_consented,
    app_single_tenant,
    run_checks,
    tenant_no_exchange_online,
)
from audit.models import UNKNOWN_REASON, USER_INVALID, Dataset, Severity
from tests.checks.builders import (
    APP_ID,
    MAIL_READ,
    MAIL_READWRITE,
    ORG_READ_ALL,
    TENANT_ID,
    VENDOR_TENANT_ID,
    context,
    healthy_sp,
    role,
    run,
    snapshot,
)


def not_evaluated_reasons(snap, ctx=None):
    return {n.check_id: n.reason for n in run_checks(snap, ctx or context())[1]}


# --- app-not-consented / app-disabled ----------------------------------------------------------------


def test_missing_service_principal_is_flagged():
    [f] = run(app_not_consented, snapshot(sp=None))
    assert (f.check_id, f.severity, f.predicted_error) == (
        "app-not-consented",
        Severity.CRITICAL,
        UNKNOWN_REASON,
    )
    assert (f.user_id, f.user_principal_name, f.display_name) == (None, None, None)
    assert f"no service principal with appId {APP_ID}" in f.evidence and TENANT_ID in f.evidence


def test_present_service_principal_is_a_near_miss():
    assert run(app_not_consented, snapshot()) == []


def test_disabled_service_principal_is_flagged():
    [f] = run(app_disabled, snapshot(sp=healthy_sp(accountEnabled=False)))
    assert f.severity == Severity.CRITICAL
    assert "sp-etd" in f.evidence and "accountEnabled false" in f.evidence


def test_enabled_or_absent_service_principal_is_not_disabled():
    assert run(app_disabled, snapshot()) == []


# disabledByMicrosoftStatus: null, NotDisabled or DisabledDueToViolationOfServicesAgreement (Graph v1.0
# application resource, api-reference/v1.0/resources/application.md; the same property on servicePrincipal,
# and isDisabled on both, in Graph's v1.0 metadata, msgraph-metadata schemas/v1.0-Prod.csdl).
@pytest.mark.parametrize(
    ("sp", "application", "says"),
    [
        (
            {"disabledByMicrosoftStatus": "DisabledDueToViolationOfServicesAgreement"},
            None,
            f"service principal Threat Defense (sp-etd, appId {APP_ID}) has disabledByMicrosoftStatus "
            "DisabledDueToViolationOfServicesAgreement",
        ),
        ({"isDisabled": True}, None, f"(sp-etd, appId {APP_ID}) has isDisabled true"),
        (
            {},
            {"id": "app-obj", "appId": APP_ID, "displayName": "Threat Defense", "isDisabled": True},
            f"app registration Threat Defense (app-obj, appId {APP_ID}) has isDisabled true",
        ),
        (
            {"accountEnabled": False, "disabledByMicrosoftStatus": "DisabledDueToViolationOfServicesAgreement"},
            None,
            "has accountEnabled false and has disabledByMicrosoftStatus DisabledDueToViolationOfServicesAgreement",
        ),
    ],
    ids=["sp-by-microsoft", "sp-isDisabled", "app-isDisabled", "both"],
)
def test_app_disabled_by_microsoft_is_flagged_and_says_which(sp, application, says):
    [f] = run(app_disabled, snapshot(sp=healthy_sp(**sp), application=application))
    assert f.severity == Severity.CRITICAL and says in f.evidence


def test_not_disabled_by_microsoft_is_a_near_miss():
    sp = healthy_sp(disabledByMicrosoftStatus="NotDisabled", isDisabled=False)
    app = {"id": "app-obj", "appId": APP_ID, "disabledByMicrosoftStatus": None, "isDisabled": None}
    assert run(app_disabled, snapshot(sp=sp, application=app)) == []
    assert run(app_disabled, snapshot(sp=None)) == []


def test_unreadable_service_principal_is_not_evaluated():
    reason = "the audit app may not read the remediation app's service principal; grant Application.Read.All"
    reasons = not_evaluated_reasons(snapshot(sp=Dataset.missing(reason), roles=Dataset.missing(reason)))
    assert reasons["app-not-consented"] == reason
    assert reasons["app-disabled"] == reason
    assert reasons["app-missing-permission"] == reason


# --- app-missing-permission --------------------------------------------------------------------------


def test_mail_readwrite_held_only_as_delegated_grant_is_flagged():
    snap = snapshot(
        roles=[role(MAIL_READ), role(ORG_READ_ALL)],
        delegated=[
            {
                "clientId": "sp-etd",
                "consentType": "AllPrincipals",
                "resourceId": "graph-sp-object-id",
                "scope": "User.Read Mail.ReadWrite",
            }
        ],
    )
    [f] = run(app_missing_permission, snap)
    assert (f.severity, f.predicted_error) == (Severity.CRITICAL, UNKNOWN_REASON)
    assert f"no Microsoft Graph application permission Mail.ReadWrite ({MAIL_READWRITE})" in f.evidence
    assert "held on Microsoft Graph: Mail.Read, Organization.Read.All" in f.evidence
    assert "granted only as a delegated permission (AllPrincipals)" in f.evidence


def test_one_finding_per_missing_role():
    findings = run(app_missing_permission, snapshot(roles=[]))
    assert len(findings) == 2
    assert "Mail.ReadWrite" in findings[0].evidence and "Organization.Read.All" in findings[1].evidence
    # Each finding's identity across runs is set by the check, not read back out of its evidence.
    assert [f.subject for f in findings] == ["mail.readwrite", "organization.read.all"]
    assert "held on Microsoft Graph: none" in findings[0].evidence


def test_role_on_another_resource_does_not_count():
    snap = snapshot(roles=[role(MAIL_READWRITE, resource="some-other-api"), role(ORG_READ_ALL)])
    [f] = run(app_missing_permission, snap)
    assert "Mail.ReadWrite" in f.evidence


def test_both_roles_held_is_a_near_miss():
    assert run(app_missing_permission, snapshot()) == []


def test_not_run_when_the_service_principal_is_absent():
    reasons = not_evaluated_reasons(snapshot(sp=None))
    assert "no service principal" in reasons["app-missing-permission"]
    # also when the collector already marked the roles as unreadable for that reason
    missing = Dataset.missing("the remediation app has no service principal in this tenant")
    reasons = not_evaluated_reasons(snapshot(sp=None, roles=missing, delegated=missing))
    assert reasons["app-missing-permission"] == "the remediation app has no service principal in this tenant"


# --- app-single-tenant -------------------------------------------------------------------------------


def test_single_tenant_app_with_several_tenants_is_flagged():
    sp = healthy_sp(signInAudience="AzureADMyOrg", appOwnerOrganizationId=TENANT_ID)
    [f] = run(app_single_tenant, snapshot(sp=sp), context(tenant_count=3))
    assert (f.severity, f.predicted_error) == (Severity.CRITICAL, USER_INVALID)
    assert f.evidence == "signInAudience AzureADMyOrg (from the service principal) while 3 tenants are configured"


def test_single_tenant_app_outside_its_home_tenant_is_flagged():
    sp = healthy_sp(signInAudience="AzureADMyOrg")  # owned by the vendor tenant
    [f] = run(app_single_tenant, snapshot(sp=sp))
    assert f"this tenant is not the app's home tenant {VENDOR_TENANT_ID}" in f.evidence


def test_single_tenant_app_in_its_only_home_tenant_is_a_near_miss():
    sp = healthy_sp(signInAudience="AzureADMyOrg", appOwnerOrganizationId=TENANT_ID)
    assert run(app_single_tenant, snapshot(sp=sp)) == []
    assert run(app_single_tenant, snapshot(), context(tenant_count=4)) == []  # multi-tenant app


def test_app_registration_wins_over_service_principal():
    sp = healthy_sp(signInAudience="AzureADMyOrg", appOwnerOrganizationId=TENANT_ID)
    app = {"id": "app-obj", "appId": APP_ID, "signInAudience": "AzureADMultipleOrgs"}
    assert run(app_single_tenant, snapshot(sp=sp, application=app), context(tenant_count=2, home=TENANT_ID)) == []
    app["signInAudience"] = "AzureADMyOrg"
    [f] = run(app_single_tenant, snapshot(sp=sp, application=app), context(tenant_count=2, home=TENANT_ID))
    assert "(from the app registration)" in f.evidence


def test_single_tenant_not_evaluated_without_any_source():
    reasons = not_evaluated_reasons(snapshot(sp=None))
    assert "no service principal" in reasons["app-single-tenant"]


# --- app-credential-expiring -------------------------------------------------------------------------


def secret(name, end, key="a1b2c3d4-0000-0000-0000-000000000000"):
    return {"keyId": key, "displayName": name, "endDateTime": end}


def app_with(secrets=(), certs=()):
    return {
        "id": "app-obj",
        "appId": APP_ID,
        "signInAudience": "AzureADMultipleOrgs",
        "passwordCredentials": list(secrets),
        "keyCredentials": list(certs),
    }


def test_expired_secret_with_a_valid_one_left_is_high():
    app = app_with([secret("old", "2025-11-01T00:00:00Z"), secret("new", "2026-11-01T00:00:00Z")])
    [f] = run(app_credential_expiring, snapshot(application=app), context(home=TENANT_ID))
    assert (f.severity, f.predicted_error) == (Severity.HIGH, f"{UNKNOWN_REASON} (once it lapses)")
    assert "secret 'old' (key a1b2c3d4) expired 2025-11-01 (30 days ago)" in f.evidence
    assert "1 credential(s) valid today" in f.evidence
    assert f.user_id is None


def test_no_valid_credential_left_is_critical():
    app = app_with(
        [secret("old", "2025-11-01T00:00:00Z")],
        [
            {
                "keyId": "cert0001",
                "displayName": "CN=etd",
                "usage": "Verify",
                "endDateTime": "2025-06-30T00:00:00Z",
            }
        ],
    )
    secret_finding, cert_finding = run(app_credential_expiring, snapshot(application=app))
    assert secret_finding.severity == cert_finding.severity == Severity.CRITICAL
    assert "secret 'old'" in secret_finding.evidence and "certificate 'CN=etd'" in cert_finding.evidence
    assert "no credential is still valid" in cert_finding.evidence


def test_one_finding_per_credential_each_with_its_own_severity():
    app = app_with(
        [secret("soon", "2025-12-11T12:00:00Z")],
        [
            {
                "keyId": "cert0002",
                "displayName": "CN=old",
                "usage": "Verify",
                "endDateTime": "2025-11-28T00:00:00Z",
            }
        ],
    )
    findings = run(app_credential_expiring, snapshot(application=app))
    assert [(f.severity, f.evidence.split(" (key")[0]) for f in findings] == [
        (Severity.HIGH, "certificate 'CN=old'"),
        (Severity.MEDIUM, "secret 'soon'"),
    ]
    assert findings[0].subject == "cert0002" and findings[1].subject  # the start of each keyId


def test_expiring_within_the_warning_window_is_medium():
    app = app_with([secret("soon", "2025-12-15T12:00:00.1234567Z")])
    [f] = run(app_credential_expiring, snapshot(application=app), context(warning_days=30))
    assert f.severity == Severity.MEDIUM
    assert "expires 2025-12-15 (15 days left)" in f.evidence


@pytest.mark.parametrize("warning_days", [7, 13])
def test_credentials_beyond_the_window_are_a_near_miss(warning_days):
    app = app_with(
        [secret("soon", "2025-12-15T12:00:00Z")],
        [{"keyId": "sign0001", "usage": "Sign", "endDateTime": "2025-01-01T00:00:00Z"}],
    )
    assert run(app_credential_expiring, snapshot(application=app), context(warning_days=warning_days)) == []


def test_credentials_not_evaluated_outside_the_home_tenant():
    reasons = not_evaluated_reasons(snapshot())
    assert reasons["app-credential-expiring"] == "the app registration lives in another tenant"


def test_app_registration_not_found_is_not_evaluated():
    reasons = not_evaluated_reasons(snapshot(application=Dataset(None)))
    assert f"app registration {APP_ID} was not found" in reasons["app-credential-expiring"]


# --- tenant-no-exchange-online ------------------------------------------------------------------------


def test_tenant_without_exchange_online_is_one_critical_tenant_finding():
    # Outlook's answer in such a tenant: 401 OrganizationFromTenantGuidNotFound, "The tenant for tenant guid
    # '...' does not exist." (MicrosoftDocs/azure-docs#32957); collection records it as exchange_online False.
    [f] = run(tenant_no_exchange_online, snapshot(exchange_online=False))
    assert (f.check_id, f.severity, f.user_id) == ("tenant-no-exchange-online", Severity.CRITICAL, None)
    assert "OrganizationFromTenantGuidNotFound" in f.evidence and TENANT_ID in f.evidence
    assert "MailboxSettings.Read" not in f.fix + f.cause + f.evidence  # not a permission to grant
    assert run(tenant_no_exchange_online, snapshot(exchange_online=True)) == []


def test_exchange_online_not_asked_is_not_evaluated_never_passed():
    reasons = not_evaluated_reasons(snapshot(exchange_online=Dataset.missing("mailbox probes were switched off")))
    assert reasons["tenant-no-exchange-online"] == "mailbox probes were switched off"
