"""The evidence each check writes, word for word: what the admin reads to find the object and the fix.

The property names quoted in evidence (accountEnabled, disabledByMicrosoftStatus, isDisabled,
signInAudience, verifiedDomains, skuPartNumber, capabilityStatus values such as Suspended/Warning,
licenseAssignmentStates error states) are those of the Graph v1.0 servicePrincipal, application,
organization, subscribedSku and user resources (learn.microsoft.com/graph/api/resources/...).
"""

from __future__ import annotations

from dataclasses import replace

from audit.checks import (
    app_disabled,
    app_missing_permission,
    app_not_consented,
    app_single_tenant,
    domain_not_verified,
    exchange_license_suspended,
    no_exchange_license,
    on_premises_mailbox,
    soft_deleted_user,
    tenant_no_exchange_online,
)
from audit.models import Dataset
from tests.checks.builders import (
    APP_ID,
    EXO_P1,
    EXO_P2,
    FOUNDATION,
    MAIL_READ,
    MAIL_READWRITE,
    NO_MAILBOX,
    ORG_READ_ALL,
    SKU_E3,
    SKU_PBI_FREE,
    TENANT_ID,
    VENDOR_TENANT_ID,
    context,
    e3_user,
    healthy_sp,
    role,
    run,
    snapshot,
    unlicensed,
    user,
)

E3_SKUS = [{"skuId": SKU_E3, "skuPartNumber": "ENTERPRISEPACK", "servicePlans": [{"servicePlanId": EXO_P2}]}]
NOT_PROBED = "directory data only (no mailbox probe)"
PROBED_NONE = "mailbox probe: no_mailbox (MailboxNotEnabledForRESTAPI)"


def said(findings) -> list[tuple]:
    return [(f.user_id, f.severity.value, f.subject, f.evidence) for f in findings]


def test_app_disabled_names_each_object_and_every_flag_that_stops_it():
    snap = snapshot(
        sp=healthy_sp(accountEnabled=False, disabledByMicrosoftStatus="DisabledDueToViolationOfServicesAgreement"),
        application={"id": "app-obj", "appId": APP_ID, "displayName": "TD", "isDisabled": True},
    )
    assert said(run(app_disabled, snap)) == [
        (
            None,
            "critical",
            None,
            f"service principal Threat Defense (sp-etd, appId {APP_ID}) has accountEnabled false and has "
            f"disabledByMicrosoftStatus DisabledDueToViolationOfServicesAgreement; app registration TD (app-obj, "
            f"appId {APP_ID}) has isDisabled true",
        )
    ]
    # NotDisabled in any spelling, isDisabled false and an enabled account stop nothing.
    fine = healthy_sp(disabledByMicrosoftStatus="notDisabled", isDisabled=False)
    assert (
        run(app_disabled, snapshot(sp=fine, application={"id": "a", "disabledByMicrosoftStatus": "NotDisabled"})) == []
    )
    unnamed = run(app_disabled, snapshot(sp=healthy_sp(displayName=None, isDisabled=True)))
    assert [f.evidence for f in unnamed] == [f"service principal  (sp-etd, appId {APP_ID}) has isDisabled true"]


def test_missing_permissions_name_the_role_what_is_held_and_a_delegated_grant():
    snap = snapshot(
        roles=[role(MAIL_READ), role("0a0a0a0a-0000-0000-0000-000000000000")],
        delegated=[{"scope": "openid Mail.ReadWrite", "consentType": "AllPrincipals"}],
    )
    held = "application permissions held on Microsoft Graph: 0a0a0a0a-0000-0000-0000-000000000000, Mail.Read"
    assert said(run(app_missing_permission, snap)) == [
        (
            None,
            "critical",
            "mail.readwrite",
            f"no Microsoft Graph application permission Mail.ReadWrite (e2a3a72e-5f79-4c64-b1b1-878b674786c9); {held}; "
            "Mail.ReadWrite is granted only as a delegated permission (AllPrincipals), which app-only calls do not use",
        ),
        (
            None,
            "critical",
            "organization.read.all",
            f"no Microsoft Graph application permission Organization.Read.All (498476ce-e0fe-48b0-b801-37ba7e2685c6); "
            f"{held}",
        ),
    ]
    none = run(app_missing_permission, snapshot(roles=[], delegated=[{"scope": "Mail.ReadWrite"}]))
    assert none[0].evidence.endswith(
        "held on Microsoft Graph: none; Mail.ReadWrite is granted only as a delegated permission (unknown consent), "
        "which app-only calls do not use"
    )


def test_app_not_consented_names_the_app_and_the_tenant():
    assert said(run(app_not_consented, snapshot(sp=None))) == [
        (None, "critical", None, f"no service principal with appId {APP_ID} in tenant contoso ({TENANT_ID})")
    ]


def test_single_tenant_app_says_where_the_audience_was_read_and_why_it_fails():
    sp = healthy_sp(signInAudience="AzureADMyOrg")
    assert [f.evidence for f in run(app_single_tenant, snapshot(sp=sp), context(tenant_count=2))] == [
        "signInAudience AzureADMyOrg (from the service principal) while 2 tenants are configured and this tenant "
        f"is not the app's home tenant {VENDOR_TENANT_ID}"
    ]
    registration = snapshot(application={"signInAudience": "azureadmyorg"})
    assert [f.evidence for f in run(app_single_tenant, registration, context(home="other-home"))] == [
        "signInAudience azureadmyorg (from the app registration) while this tenant is not the app's home tenant "
        "other-home"
    ]


def test_an_unverified_domain_lists_the_verified_ones():
    assert said(run(domain_not_verified, snapshot(), context(domains=("Fabrikam.com", "CONTOSO.com")))) == [
        (
            None,
            "high",
            "fabrikam.com",
            "domain Fabrikam.com is configured for this tenant but is not among its verified domains "
            "(contoso.com, contoso.onmicrosoft.com)",
        )
    ]
    nameless = snapshot(organization={"id": TENANT_ID, "verifiedDomains": [{"name": None}, {}]})
    assert [f.evidence for f in run(domain_not_verified, nameless, context(domains=("a.com",)))] == [
        "domain a.com is configured for this tenant but is not among its verified domains (none)"
    ]
    # A domain typed with spaces in the config is named without them.
    spaced = run(domain_not_verified, snapshot(), context(domains=("  Fabrikam.com ",)))
    assert [f.evidence.split(" is ")[0] for f in spaced] == ["domain Fabrikam.com"]


def test_a_tenant_without_exchange_online_quotes_the_answer():
    assert [f.evidence for f in run(tenant_no_exchange_online, snapshot(exchange_online=False))] == [
        "Outlook answered the mailbox probe with 401 OrganizationFromTenantGuidNotFound: Exchange Online has no "
        f"organisation for tenant {TENANT_ID}"
    ]


def test_suspended_grace_and_error_licences_each_say_what_they_found():
    users = [
        e3_user("lapsed", "Suspended"),
        e3_user("grace", "Warning"),
        user("both", plans=[(EXO_P2, "Warning"), (EXO_P1, "Deleted")], licenses=[(SKU_E3,)]),
        e3_user("group", states=[(SKU_E3, "Error", "CountViolation", "group-1")]),
        e3_user("direct", states=[(SKU_E3, "ActiveWithError", None, None)]),
        # An error on a SKU that carries no mailbox plan does not matter here.
        user(
            "pbi", licenses=[(SKU_PBI_FREE,)], states=[(SKU_PBI_FREE, "Error", "x", None)], plans=[(EXO_P1, "Enabled")]
        ),
    ]
    found = run(exchange_license_suspended, snapshot(users, skus=E3_SKUS, probes={"lapsed": NO_MAILBOX}))
    assert said(found) == [
        (
            "lapsed",
            "high",
            None,
            f"mailbox plan EXCHANGE_S_ENTERPRISE (Suspended); no Enabled mailbox plan; {PROBED_NONE}",
        ),
        (
            "grace",
            "medium",
            None,
            f"mailbox plan EXCHANGE_S_ENTERPRISE (Warning) (grace period); no Enabled mailbox plan; {NOT_PROBED}",
        ),
        (
            "both",
            "medium",
            None,
            "mailbox plan EXCHANGE_S_ENTERPRISE (Warning) (grace period); no Enabled mailbox plan; also "
            f"EXCHANGE_S_STANDARD (Deleted); {NOT_PROBED}",
        ),
        (
            "group",
            "medium",
            None,
            f"licence ENTERPRISEPACK (via group group-1) in state Error: CountViolation; {NOT_PROBED}",
        ),
        (
            "direct",
            "medium",
            None,
            f"licence ENTERPRISEPACK (assigned directly) in state ActiveWithError; {NOT_PROBED}",
        ),
    ]


def test_no_licence_evidence_lists_switched_off_plans_other_exchange_plans_licences_and_errors():
    users = [
        unlicensed("bare"),
        user(
            "off",
            licenses=[(SKU_E3, EXO_P2)],
            plans=[(FOUNDATION, "Enabled")],
            states=[(SKU_E3, "Error", "MutuallyExclusiveViolation", None)],
        ),
        user("group", licenses=[(SKU_PBI_FREE,)], states=[(SKU_PBI_FREE, "Active", None, "g-1")]),
    ]
    found = run(no_exchange_license, snapshot(users, skus=E3_SKUS, probes={"bare": NO_MAILBOX}))
    none = "no enabled Exchange Online plan that gives a mailbox"
    assert said(found) == [
        ("bare", "high", None, f"{none}; no licences; {PROBED_NONE}"),
        (
            "off",
            "high",
            None,
            f"{none}; switched off in the licence: EXCHANGE_S_ENTERPRISE in ENTERPRISEPACK; Exchange plans held, none "
            "giving a mailbox: EXCHANGE_S_FOUNDATION (Enabled); licences: ENTERPRISEPACK; licence ENTERPRISEPACK in "
            f"state Error (MutuallyExclusiveViolation); {NOT_PROBED}",
        ),
        ("group", "high", None, f"{none}; licences: POWER_BI_STANDARD (via group); {NOT_PROBED}"),
    ]


def test_on_premises_evidence_names_the_address_and_the_cloud_plans():
    users = [
        user("h1", synced=True, proxy=["SMTP:h1@contoso.com"]),
        user(
            "h2",
            synced=True,
            mail=None,
            proxy=["smtp:h2@contoso.com"],
            plans=[(EXO_P2, "Enabled")],
            licenses=[(SKU_E3,)],
        ),
    ]
    found = run(on_premises_mailbox, snapshot(users, skus=E3_SKUS, probes={"h1": NO_MAILBOX, "h2": NO_MAILBOX}))
    synced = "synchronised from on-premises AD (immutable id set), mail-enabled"
    assert said(found) == [
        ("h1", "high", None, f"{synced} (h1@contoso.com); no Exchange Online mailbox plan; {PROBED_NONE}"),
        ("h2", "high", None, f"{synced} (smtp:h2@contoso.com); holds EXCHANGE_S_ENTERPRISE (Enabled); {PROBED_NONE}"),
    ]


def test_soft_deleted_evidence_counts_the_days_to_the_purge():
    deleted = [
        user("d1", deleted="2025-11-20T10:00:00Z", plans=[(EXO_P2, "Enabled")], licenses=[(SKU_E3,)]),
        user("d2", deleted=None),
        user("d3", mail=None, deleted="2025-10-01T00:00:00Z", plans=[(EXO_P2, "Suspended")]),
    ]
    found = run(soft_deleted_user, snapshot(deleted=deleted, skus=E3_SKUS))
    assert said(found) == [
        (
            "d1",
            "medium",
            None,
            "deleted 2025-11-20; purged permanently around 2025-12-20 (19 days left); address d1@contoso.com; "
            "held EXCHANGE_S_ENTERPRISE (Enabled)",
        ),
        ("d2", "medium", None, "in the deleted-users container (deletion date not reported); address d2@contoso.com"),
        (
            "d3",
            "medium",
            None,
            "deleted 2025-10-01; purged permanently around 2025-10-31 (0 days left); held EXCHANGE_S_ENTERPRISE "
            "(Suspended)",
        ),
    ]


def test_rbac_only_scope_by_recipient_type_reads_the_probe_and_says_so():
    # RBAC for Applications management scopes filter on recipient properties such as RecipientTypeDetails
    # (learn.microsoft.com/exchange/permissions-exo/application-rbac); the probe tells a shared mailbox from a
    # user mailbox.
    from audit import opath, rbac
    from audit.checks import mailbox_outside_app_scope
    from audit.models import MailboxProbe

    grant = rbac.RbacGrant(
        "etd-shared",
        rbac.MAIL_ROLE,
        "management scope Shared only",
        filter_text="RecipientTypeDetails -eq 'SharedMailbox'",
        filter=opath.parse("RecipientTypeDetails -eq 'SharedMailbox'"),
    )
    users = [e3_user("person"), e3_user("shared")]
    probes = {"person": MailboxProbe("mailbox", purpose="user"), "shared": MailboxProbe("mailbox", purpose="shared")}
    snap = snapshot(users, probes=probes, roles=[role(ORG_READ_ALL)], skus=E3_SKUS)
    snap = replace(snap, rbac=Dataset((grant,)))
    assert said(run(mailbox_outside_app_scope, snap)) == [
        (
            "person",
            "high",
            None,
            "mailbox outside every scope of the app's Exchange RBAC for Applications grant (Application "
            "Mail.ReadWrite scoped to management scope Shared only), the only way it holds Mail.ReadWrite; "
            "mailbox probe: mailbox, purpose user",
        )
    ]


def test_an_unknown_check_id_has_no_catalogue_entry():
    from audit.checks import check_info

    assert check_info("no-such-check") is None
    assert check_info("app-disabled") is app_disabled.CHECK


def test_rbac_grants_whose_scope_cannot_be_read_are_each_named():
    import pytest

    from audit import rbac
    from audit.checks import CheckUnavailable, mailbox_outside_app_scope

    grants = (
        rbac.RbacGrant("a", rbac.MAIL_ROLE, "management scope Legal", unreadable="filters on CustomAttribute9"),
        rbac.RbacGrant("b", rbac.MAIL_ROLE, "administrative unit Sales", unreadable="members not exported"),
    )
    snap = replace(snapshot([e3_user("person")], roles=[role(ORG_READ_ALL)], skus=E3_SKUS), rbac=Dataset(grants))
    with pytest.raises(CheckUnavailable) as err:
        run(mailbox_outside_app_scope, snap)
    assert err.value.reason == (
        "the scope of the remediation app's RBAC for Applications grant is not evaluated: Application Mail.ReadWrite "
        "scoped to management scope Legal: filters on CustomAttribute9; Application Mail.ReadWrite scoped to "
        "administrative unit Sales: members not exported"
    )


def test_a_recipient_is_owned_through_the_mail_attribute_alone():
    from audit.checks import recipient_not_in_directory

    owner = user("u1", upn="u1@contoso.onmicrosoft.com", mail="Sales@Contoso.com")
    snap = snapshot([owner], recipients=["sales@contoso.com", "nobody@contoso.com"])
    assert [f.evidence for f in run(recipient_not_in_directory, snap, context(domains=("contoso.com",)))] == [
        "no user owns nobody@contoso.com as mail, user principal name or proxy address"
    ]


def test_mail_readwrite_through_exchange_rbac_is_held_and_named_in_the_other_findings():
    # Exchange RBAC for Applications "Application Mail.ReadWrite" gives the app the Graph right inside its scope
    # (learn.microsoft.com/exchange/permissions-exo/application-rbac).
    from audit import rbac

    grant = rbac.RbacGrant("etd", rbac.MAIL_ROLE, "management scope Staff")
    snap = replace(snapshot(roles=[role(MAIL_READ)]), rbac=Dataset((grant,)))
    assert said(run(app_missing_permission, snap)) == [
        (
            None,
            "critical",
            "organization.read.all",
            "no Microsoft Graph application permission Organization.Read.All (498476ce-e0fe-48b0-b801-37ba7e2685c6); "
            "application permissions held on Microsoft Graph: Mail.Read; held through Exchange RBAC for "
            "Applications, scoped: Application Mail.ReadWrite scoped to management scope Staff",
        )
    ]
    unknown = replace(snapshot(roles=[role(ORG_READ_ALL)]), rbac=Dataset.missing("no role assignments export"))
    assert [f.evidence for f in run(app_missing_permission, unknown)] == [
        "no Microsoft Graph application permission Mail.ReadWrite (e2a3a72e-5f79-4c64-b1b1-878b674786c9); "
        "application permissions held on Microsoft Graph: Organization.Read.All; Exchange RBAC for Applications "
        "grants not known: no role assignments export"
    ]
    org_missing = replace(snapshot(roles=[role(MAIL_READWRITE)]), rbac=Dataset.missing("no export"))
    assert [f.subject for f in run(app_missing_permission, org_missing)] == ["organization.read.all"]
    assert "RBAC" not in run(app_missing_permission, org_missing)[0].evidence


def test_missing_permission_says_why_it_cannot_decide():
    import pytest

    from audit.checks import CheckUnavailable

    with pytest.raises(CheckUnavailable) as err:
        run(app_missing_permission, snapshot(sp=None))
    assert err.value.reason == "the remediation app has no service principal in this tenant (see app-not-consented)"
    with pytest.raises(CheckUnavailable) as err:
        run(app_missing_permission, snapshot(graph_sp_id=None))
    assert err.value.reason == "Microsoft Graph's service principal was not found in this tenant"


def test_a_suspended_plan_outweighs_a_licence_error():
    both = e3_user("u1", "Suspended", states=[(SKU_E3, "Error", "CountViolation", None)])
    [found] = run(exchange_license_suspended, snapshot([both], skus=E3_SKUS))
    assert found.severity.value == "high"


def test_usage_report_answers_are_named_as_such_and_a_purpose_only_for_a_mailbox():
    from audit.models import MailboxProbe

    hybrid = user("h1", synced=True)
    report = MailboxProbe("no_mailbox", purpose="user", source="usage_report")
    [found] = run(on_premises_mailbox, snapshot([hybrid], probes={"h1": report}))
    assert found.evidence.endswith("; no Exchange Online mailbox plan; mailbox usage report: no_mailbox")


def test_an_unnamed_app_registration_disabled_twice_gives_both_reasons():
    registration = {"id": "app-obj", "appId": APP_ID, "isDisabled": True, "disabledByMicrosoftStatus": "Blocked"}
    assert [f.evidence for f in run(app_disabled, snapshot(application=registration))] == [
        f"app registration  (app-obj, appId {APP_ID}) has disabledByMicrosoftStatus Blocked and has isDisabled true"
    ]


def test_app_single_tenant_and_domain_checks_say_why_they_cannot_decide():
    import pytest

    from audit.checks import CheckUnavailable

    cases = [
        (
            app_single_tenant,
            snapshot(sp=None),
            "the remediation app has no service principal here and its registration is not readable in this tenant "
            "(see app-not-consented)",
        ),
        (
            app_single_tenant,
            snapshot(application={"id": "app-obj"}),
            "the remediation app's app registration does not state its sign-in audience",
        ),
        (
            domain_not_verified,
            snapshot(organization=Dataset(None)),
            "the organization was not returned, so its verified domains are unknown",
        ),
    ]
    for check, snap, reason in cases:
        with pytest.raises(CheckUnavailable) as err:
            run(check, snap, context(domains=("contoso.com",)))
        assert err.value.reason == reason


def test_the_home_tenant_id_compares_case_insensitively():
    home = "e419272c-dee4-42c8-8890-810aa7d8d9cf"
    snap = replace(snapshot(sp=healthy_sp(signInAudience="AzureADMyOrg")), tenant_id=home)
    assert run(app_single_tenant, snap, context(home=home.upper())) == []
    assert run(app_single_tenant, replace(snap, tenant_id=home.upper()), context(home=home)) == []


def test_users_left_to_other_checks_do_not_end_the_licence_check():
    from audit.models import MailboxProbe

    users = [
        unlicensed("probed", display_name="Has a mailbox"),
        user("hybrid", synced=True),
        e3_user("suspended", "Suspended"),
        unlicensed("bare"),
    ]
    snap = snapshot(users, skus=E3_SKUS, probes={"probed": MailboxProbe("mailbox", purpose="user")})
    assert [f.user_id for f in run(no_exchange_license, snap)] == ["bare"]


def test_users_left_to_other_checks_do_not_end_the_on_premises_check():
    from audit.models import MailboxProbe

    hybrid = {"synced": True}
    users = [
        user("guest", guest=True, **hybrid),
        user("failed", **hybrid),
        user("cloud", **hybrid),
        user("lapsed", plans=[(EXO_P2, "Suspended")], licenses=[(SKU_E3,)], **hybrid),
        user("planned", plans=[(EXO_P2, "Enabled")], licenses=[(SKU_E3,)], **hybrid),
        user("onprem", **hybrid),
    ]
    probes = {
        "failed": MailboxProbe("failed", code="TooManyRequests"),
        "cloud": MailboxProbe("mailbox", purpose="user"),
        "lapsed": NO_MAILBOX,
        "onprem": NO_MAILBOX,
    }
    assert [f.user_id for f in run(on_premises_mailbox, snapshot(users, skus=E3_SKUS, probes=probes))] == ["onprem"]


def test_a_guest_in_the_deleted_users_does_not_end_the_check_and_a_started_day_counts_whole():
    deleted = [user("guest", guest=True, deleted="2025-11-20T10:00:00Z"), user("d1", deleted="2025-11-11T12:00:01Z")]
    [found] = run(soft_deleted_user, snapshot(deleted=deleted))
    # Purged 30 days after deletion: 10 days and one second after NOW, so 11 days are left.
    assert found.evidence.startswith("deleted 2025-11-11; purged permanently around 2025-12-11 (11 days left)")
